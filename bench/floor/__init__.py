"""The floor of bench/http.py: the least a Django + DRF request can cost on this machine, served by the same
gunicorn and database settings as Forecastle, so that the service's figures are read as ratios to it."""
