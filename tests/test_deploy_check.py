"""`manage.py check --deploy` under the production settings, with the environment production requires,
reports no warning at all (--fail-level WARNING turns any into a failure)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def deploy_check(**overrides: str) -> subprocess.CompletedProcess[str]:
    # Only what a production process would have: nothing of the test run's own environment (the browser tests,
    # for one, set DJANGO_ALLOW_ASYNC_UNSAFE, which the deploy check rightly refuses).
    environment = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(60),
        ALLOWED_HOSTS="forecastle.example",
        EMAIL_HOST="smtp.forecastle.example",
        DEFAULT_FROM_EMAIL="Forecastle <noreply@forecastle.example>",
        **overrides,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check_without_a_warning():
    result = deploy_check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_the_check_would_catch_a_weakened_setting():
    result = deploy_check(SECURE_SSL_REDIRECT="false")
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr
