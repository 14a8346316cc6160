-- Typed ad-set days: one row per account, ad set and day. A load replaces whole (account, day) sets
-- and writes each key once, so no deduplication is needed here: filters on date reach raw_insights
-- directly and a daily run's cost does not grow with the stored history.
SELECT
    account_id,
    campaign_id,
    campaign_name,
    adset_id,
    adset_name,
    date,
    CAST(spend AS DOUBLE) AS spend,
    CAST(impressions AS BIGINT) AS impressions,
    CAST(clicks AS BIGINT) AS clicks,
    CAST(purchases AS DOUBLE) AS purchases,
    CAST(purchase_value AS DOUBLE) AS purchase_value,
    currency
FROM raw_insights
