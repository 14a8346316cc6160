-- Per ad-set day ratios. A ratio with a zero denominator is NULL, never 0 or infinity.
SELECT
    account_id,
    campaign_id,
    campaign_name,
    adset_id,
    adset_name,
    date,
    spend,
    impressions,
    clicks,
    purchases,
    purchase_value AS revenue,
    currency,
    purchase_value / nullif(spend, 0) AS roas,
    spend / nullif(purchases, 0) AS cpa,
    clicks / nullif(impressions, 0) AS ctr,
    purchases / nullif(clicks, 0) AS cvr
FROM stg_insights
