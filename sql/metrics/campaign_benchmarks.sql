-- Campaign benchmarks as of a decision date (spec 4.3): revenue / spend per campaign.
SELECT
    decision_date,
    account_id,
    campaign_id,
    any_value(campaign_name) AS campaign_name,
    count(*) AS audiences,
    sum(spend_window) AS spend_window,
    sum(purchases_window) AS purchases_window,
    sum(revenue_window) AS revenue_window,
    sum(revenue_window) / nullif(sum(spend_window), 0) AS avg_roas
FROM window_metrics
WHERE decision_date = $as_of::DATE AND ($account::VARCHAR IS NULL OR account_id = $account::VARCHAR)
GROUP BY decision_date, account_id, campaign_id
ORDER BY account_id, campaign_id
