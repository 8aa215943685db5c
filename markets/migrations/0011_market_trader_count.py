from django.db import migrations, models

# Every market's count of users holding a position in it (markets.models.Market.trader_count), as the snapshot's
# database rebuild counted them until now.
BACKFILL = """
    UPDATE markets_market AS market SET trader_count = counted.traders
    FROM (SELECT market_id, count(DISTINCT user_id) AS traders FROM markets_position GROUP BY market_id) AS counted
    WHERE counted.market_id = market.id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("markets", "0010_standing_forecasts"),
    ]

    operations = [
        migrations.AddField(
            model_name="market",
            name="trader_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
