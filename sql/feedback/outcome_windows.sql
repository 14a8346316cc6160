-- Every stored decision, for every horizon whose days the warehouse holds: the ad set's figures over
-- the horizon (the decision date and the h - 1 days after it) and over the h days before it, the
-- account's over the same days, and how much of the horizon is still maturing (conversions keep
-- arriving for $maturing_days days after a day). Restated days are re-read at every run. $account
-- (NULL: every account) judges one account's decisions.
WITH horizons AS (
    SELECT unnest($horizons::INTEGER[]) AS horizon_days
),
coverage AS (
    SELECT account_id, max(date) AS newest_day FROM daily_metrics WHERE ($account::VARCHAR IS NULL OR account_id = $account::VARCHAR) GROUP BY account_id
),
judged AS (
    SELECT d.decision_date, d.account_id, d.adset_id, h.horizon_days, c.newest_day
    FROM decisions d
    CROSS JOIN horizons h
    JOIN coverage c USING (account_id)
    WHERE d.decision_date + (h.horizon_days - 1) <= c.newest_day
),
adset AS (
    SELECT
        j.decision_date, j.account_id, j.adset_id, j.horizon_days,
        coalesce(sum(m.spend) FILTER (WHERE m.date >= j.decision_date), 0) AS spend,
        coalesce(sum(m.revenue) FILTER (WHERE m.date >= j.decision_date), 0) AS revenue,
        coalesce(sum(m.purchases) FILTER (WHERE m.date >= j.decision_date), 0) AS purchases,
        count(m.date) FILTER (WHERE m.date >= j.decision_date AND m.spend > 0) AS days_delivering,
        coalesce(sum(m.spend) FILTER (WHERE m.date < j.decision_date), 0) AS spend_before,
        coalesce(sum(m.revenue) FILTER (WHERE m.date < j.decision_date), 0) AS revenue_before,
        coalesce(sum(m.purchases) FILTER (WHERE m.date < j.decision_date), 0) AS purchases_before
    FROM judged j
    LEFT JOIN daily_metrics m
        ON m.account_id = j.account_id AND m.adset_id = j.adset_id
        AND m.date BETWEEN j.decision_date - j.horizon_days AND j.decision_date + (j.horizon_days - 1)
    GROUP BY ALL
),
account_days AS (
    SELECT account_id, date, sum(spend) AS spend, sum(revenue) AS revenue, sum(purchases) AS purchases
    FROM daily_metrics WHERE ($account::VARCHAR IS NULL OR account_id = $account::VARCHAR) GROUP BY ALL
),
account AS (
    SELECT
        j.decision_date, j.account_id, j.horizon_days,
        any_value(j.newest_day) AS newest_day,
        sum(a.spend) AS account_spend,
        sum(a.revenue) AS account_revenue,
        sum(a.purchases) AS account_purchases
    FROM (SELECT DISTINCT decision_date, account_id, horizon_days, newest_day FROM judged) j
    JOIN account_days a
        ON a.account_id = j.account_id AND a.date BETWEEN j.decision_date AND j.decision_date + (j.horizon_days - 1)
    GROUP BY ALL
)
SELECT
    s.*,
    s.revenue / nullif(s.spend, 0) AS roas,
    a.account_spend,
    a.account_revenue,
    a.account_purchases,
    a.account_revenue / nullif(a.account_spend, 0) AS account_roas,
    a.account_revenue / nullif(a.account_purchases, 0) AS account_aov,
    (s.revenue / nullif(s.spend, 0)) / nullif(a.account_revenue / nullif(a.account_spend, 0), 0) AS roas_ratio,
    a.newest_day,
    greatest(0, least(s.horizon_days,
        date_diff('day', a.newest_day - ($maturing_days - 1), s.decision_date + (s.horizon_days - 1)) + 1
    ))::DOUBLE / s.horizon_days AS maturing_fraction
FROM adset s
JOIN account a USING (decision_date, account_id, horizon_days)
