"""Migrates the floor's database and prints, as JSON, what bench/http.py needs: one token per user and the
ids of the books (the rows trades lock).

    python -m bench.floor.seed --users 8 --books 8 --read-body FILE [--named-body NAME=FILE ...]
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.floor.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from bench.floor.models import Book  # noqa: E402
from bench.floor.views import READ_KEY  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--books", type=int, default=8)
    parser.add_argument("--read-body", type=Path, required=True, help="the bytes the read endpoint serves")
    parser.add_argument(
        "--named-body", action="append", default=[], help="NAME=FILE: the bytes /read/NAME/ serves (repeatable)"
    )
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    tokens = [
        Token.objects.create(user=User.objects.create(username=f"floor{index}")).key for index in range(options.users)
    ]
    books = [Book.objects.create().pk for _ in range(options.books)]
    cache.set(READ_KEY, options.read_body.read_bytes(), timeout=None)
    for named in options.named_body:
        name, _, path = named.partition("=")
        cache.set(f"{READ_KEY}:{name}", Path(path).read_bytes(), timeout=None)
    json.dump({"tokens": tokens, "books": books}, sys.stdout)


if __name__ == "__main__":
    main()
