"""Two tiers of property tests: `ci` runs today's example counts, `quick` a tenth of them for local runs.

The profile follows CI (set by .ci/run); HYPOTHESIS_PROFILE=ci or quick overrides it. A test that names its
own count does it through `examples(n)`: n under `ci`, a tenth (at least 5) under `quick`."""

import os

from hypothesis import settings

CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
QUICK_SHARE = 10

settings.register_profile("ci", settings.get_profile("default"))
settings.register_profile("quick", max_examples=max(5, settings.get_profile("default").max_examples // QUICK_SHARE))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if CI else "quick"))


def examples(ci_count: int) -> int:
    """A test's example count under the profile in force."""
    if settings.get_current_profile_name() == "ci":
        return ci_count
    return max(5, ci_count // QUICK_SHARE)
