from django.db import migrations, models

# The fills written before this column: the fill engine's ledger memo is "order <id> filled: ..." (an order's
# marketable part writes "order <id>: ..."). Only trades with an order are read, through the partial index
# trade_order_fills, and only fills are written.
BACKFILL = """
    UPDATE markets_trade AS trade SET fill = true
    FROM accounts_ledgertransaction AS posting
    WHERE trade.order_id IS NOT NULL AND posting.id = trade.ledger_transaction_id
      AND posting.memo LIKE 'order % filled: %'
"""


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0011_market_trader_count"),
    ]

    operations = [
        # ADD COLUMN with a constant default: a catalog change, no rewrite of the table (PostgreSQL 11 and later).
        migrations.AddField(
            model_name="trade",
            name="fill",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
