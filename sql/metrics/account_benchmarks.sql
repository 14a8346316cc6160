-- Account benchmarks as of a decision date, from that date's window metrics (spec 4.3).
-- Average ROAS is revenue / spend over the account (spend-weighted), not a mean of ratios.
SELECT
    decision_date,
    account_id,
    any_value(currency) AS currency,
    count(*) AS audiences,
    count(*) FILTER (WHERE spend_window > 0) AS active_audiences,
    sum(spend_window) AS spend_window,
    sum(purchases_window) AS purchases_window,
    sum(revenue_window) AS revenue_window,
    sum(revenue_window) / nullif(sum(spend_window), 0) AS avg_roas,
    sum(spend_window) / nullif(sum(purchases_window), 0) AS derived_cpa,
    sum(purchases_window) / nullif(sum(clicks_window), 0) AS avg_cvr,
    sum(revenue_window) / nullif(sum(purchases_window), 0) AS avg_order_value,
    median(spend_window) FILTER (WHERE spend_window > 0) AS median_audience_spend,
    sum(revenue_long) / nullif(sum(spend_long), 0) AS avg_roas_long,
    sum(revenue_long) / nullif(sum(purchases_long), 0) AS avg_order_value_long
FROM window_metrics
WHERE decision_date = $as_of::DATE AND ($account::VARCHAR IS NULL OR account_id = $account::VARCHAR)
GROUP BY decision_date, account_id
ORDER BY account_id
