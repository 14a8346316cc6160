-- Typed, deduplicated ad-set days: one row per account, ad set and day (the newest load wins).
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
QUALIFY row_number() OVER (PARTITION BY account_id, adset_id, date ORDER BY loaded_at DESC) = 1
