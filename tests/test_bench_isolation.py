"""A benchmark creates and drops scratch databases named from FORECASTLE_TEST_DB. Each must append its own
suffix to the caller's value, never take the value as it is: a bench run beside `make test` with the same
FORECASTLE_TEST_DB would otherwise drop the test run's database under it."""

import re
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
SUFFIXED = re.compile(
    r'os\.environ\["FORECASTLE_TEST_DB"\] = os\.environ\.get\("FORECASTLE_TEST_DB", ""\) \+ "(_[a-z_0-9]+)"'
)


def test_every_bench_that_names_a_database_appends_its_own_suffix():
    suffixes: dict[str, str] = {}
    for script in sorted(BENCH.glob("*.py")):
        source = script.read_text()
        if "FORECASTLE_TEST_DB" not in source:
            continue
        found = SUFFIXED.findall(source)
        assert found, f"{script.name} sets FORECASTLE_TEST_DB without appending a suffix of its own"
        assert 'setdefault("FORECASTLE_TEST_DB"' not in source, script.name
        for suffix in found:
            assert suffix not in suffixes, f"{script.name} and {suffixes[suffix]} share the suffix {suffix}"
            suffixes[suffix] = script.name
    assert suffixes, "no bench names a scratch database: this test has nothing left to guard"
