"""`manage.py reconcile`: checks every ledger and market invariant now (after a restore, say) and keeps the run
for staff like the hourly one. Prints each violation; exits with status 1 if there is any."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from markets.services import reconciliation_run


class Command(BaseCommand):
    help = "Check every ledger and market invariant; exit status 1 on any violation."

    def handle(self, *args: Any, **options: Any) -> None:
        run = reconciliation_run()
        for violation in run.violations:
            self.stdout.write(violation)
        if run.violation_count:
            raise CommandError(f"{run.violation_count} violation(s) of the ledger invariants")
        self.stdout.write("reconciliation clean: every invariant holds")
