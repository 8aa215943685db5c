"""What the stateful property tests of the real services share (the ledger's, the orders', the standing
forecasts'): a machine whose examples each run in a savepoint, the refusals a trader may be told, and how
a machine is run."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test

from markets.errors import InsufficientFunds, InsufficientShares, InvalidInput, MarketClosed, PriceMoved
from tests.hypothesis_profiles import examples

# What a trader may legitimately be told; anything else (a 500, an IntegrityError) fails the test.
EXPECTED_REFUSALS = (InvalidInput, InsufficientFunds, InsufficientShares, PriceMoved, MarketClosed)


class DatabaseMachine(RuleBasedStateMachine):
    """A machine on the real PostgreSQL. Each example runs in a savepoint rolled back at teardown, so examples
    never see each other; `now` is the example's clock."""

    def __init__(self) -> None:
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.now: datetime = timezone.now()

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self.atomic.__exit__(None, None, None)


def machine_run(machine: type[RuleBasedStateMachine], *, ci_examples: int) -> None:
    """Runs the machine for `ci_examples` examples of 30 steps (a tenth under the quick profile), untimed."""
    run_state_machine_as_test(
        machine,
        settings=hypothesis_settings(
            max_examples=examples(ci_examples),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
