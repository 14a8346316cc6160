-- Per-audience window metrics as of a decision date ($as_of): only complete days before it.
-- days_ago = 1 is the day before the decision date. The decision window ($window days) is
-- split into an early part and a late part ($late_days, the most recent days) for trends.
-- $account names the one account of a partition (NULL: every account).
-- Only the days the windows need are read, so a daily run costs the same on 30 or 900 days of
-- history; the first and last spend days come from one narrow aggregate (two columns) over all of it.
WITH d AS (
    SELECT *, datediff('day', date, $as_of::DATE) AS days_ago
    FROM daily_metrics
    WHERE date < $as_of::DATE
      AND date >= $as_of::DATE - greatest($window, $long_window, 7)
      AND ($account::VARCHAR IS NULL OR account_id = $account::VARCHAR)
),
latest AS (
    SELECT
        account_id,
        adset_id,
        arg_max(adset_name, date) AS adset_name,
        arg_max(campaign_id, date) AS campaign_id,
        arg_max(campaign_name, date) AS campaign_name,
        arg_max(currency, date) AS currency
    FROM d
    GROUP BY account_id, adset_id
),
spend_days AS (
    SELECT account_id, adset_id, min(date) AS first_spend_date, max(date) AS last_spend_date
    FROM daily_metrics
    WHERE date < $as_of::DATE AND spend > 0 AND ($account::VARCHAR IS NULL OR account_id = $account::VARCHAR)
    GROUP BY account_id, adset_id
),
agg AS (
    SELECT
        account_id,
        adset_id,
        coalesce(sum(spend) FILTER (WHERE days_ago <= 1), 0) AS spend_1d,
        coalesce(sum(spend) FILTER (WHERE days_ago <= 3), 0) AS spend_3d,
        coalesce(sum(spend) FILTER (WHERE days_ago <= 7), 0) AS spend_7d,
        coalesce(sum(purchases) FILTER (WHERE days_ago <= 1), 0) AS purchases_1d,
        coalesce(sum(purchases) FILTER (WHERE days_ago <= 3), 0) AS purchases_3d,
        coalesce(sum(purchases) FILTER (WHERE days_ago <= 7), 0) AS purchases_7d,
        coalesce(sum(revenue) FILTER (WHERE days_ago <= 1), 0) AS revenue_1d,
        coalesce(sum(revenue) FILTER (WHERE days_ago <= 3), 0) AS revenue_3d,
        coalesce(sum(revenue) FILTER (WHERE days_ago <= 7), 0) AS revenue_7d,
        coalesce(sum(spend) FILTER (WHERE days_ago <= $window), 0) AS spend_window,
        coalesce(sum(purchases) FILTER (WHERE days_ago <= $window), 0) AS purchases_window,
        coalesce(sum(revenue) FILTER (WHERE days_ago <= $window), 0) AS revenue_window,
        coalesce(sum(impressions) FILTER (WHERE days_ago <= $window), 0) AS impressions_window,
        coalesce(sum(clicks) FILTER (WHERE days_ago <= $window), 0) AS clicks_window,
        coalesce(sum(spend) FILTER (WHERE days_ago <= $late_days), 0) AS spend_late,
        coalesce(sum(purchases) FILTER (WHERE days_ago <= $late_days), 0) AS purchases_late,
        coalesce(sum(revenue) FILTER (WHERE days_ago <= $late_days), 0) AS revenue_late,
        -- Evidence over the long window weighted by recency (half-life $half_life days): what the
        -- audience does now, on more purchases than one week holds.
        coalesce(sum(spend * pow(0.5, (days_ago - 1) / $half_life)) FILTER (WHERE days_ago <= $long_window), 0)
            AS spend_recent,
        coalesce(sum(purchases * pow(0.5, (days_ago - 1) / $half_life)) FILTER (WHERE days_ago <= $long_window), 0)
            AS purchases_recent,
        coalesce(sum(revenue * pow(0.5, (days_ago - 1) / $half_life)) FILTER (WHERE days_ago <= $long_window), 0)
            AS revenue_recent,
        coalesce(sum(spend) FILTER (WHERE days_ago > $late_days AND days_ago <= $window), 0) AS spend_early,
        coalesce(sum(purchases) FILTER (WHERE days_ago > $late_days AND days_ago <= $window), 0) AS purchases_early,
        coalesce(sum(revenue) FILTER (WHERE days_ago > $late_days AND days_ago <= $window), 0) AS revenue_early,
        coalesce(sum(spend) FILTER (WHERE days_ago <= $long_window), 0) AS spend_long,
        coalesce(sum(purchases) FILTER (WHERE days_ago <= $long_window), 0) AS purchases_long,
        coalesce(sum(revenue) FILTER (WHERE days_ago <= $long_window), 0) AS revenue_long,
        count(*) FILTER (WHERE days_ago <= $window AND spend > 0) AS active_days,
        max(roas) FILTER (WHERE days_ago = 1) AS roas_day1,
        max(roas) FILTER (WHERE days_ago = 2) AS roas_day2,
        CASE WHEN count(*) FILTER (WHERE days_ago <= $window AND spend > 0) >= 2
             THEN regr_slope(roas, -days_ago) FILTER (WHERE days_ago <= $window AND spend > 0)
        END AS roas_slope,
        stddev_samp(cpa) FILTER (WHERE days_ago <= $window AND purchases > 0) AS cpa_stddev
    FROM d
    WHERE days_ago <= greatest($window, $long_window, 7)
    GROUP BY account_id, adset_id
),
-- Pearson dispersion of daily purchases around what spend alone predicts: under pure
-- Poisson noise its expectation is (active_days - 1); much more means real volatility.
disp AS (
    SELECT
        d.account_id,
        d.adset_id,
        sum(
            power(d.purchases - d.spend * a.purchases_window / a.spend_window, 2)
            / (d.spend * a.purchases_window / a.spend_window)
        ) AS purchase_dispersion
    FROM d
    JOIN agg a USING (account_id, adset_id)
    WHERE d.days_ago <= $window AND d.spend > 0 AND a.purchases_window > 0
    GROUP BY d.account_id, d.adset_id
)
SELECT
    $as_of::DATE AS decision_date,
    l.account_id,
    l.campaign_id,
    l.campaign_name,
    l.adset_id,
    l.adset_name,
    l.currency,
    $window::INTEGER AS window_days,
    a.spend_1d, a.spend_3d, a.spend_7d,
    a.purchases_1d, a.purchases_3d, a.purchases_7d,
    a.revenue_1d, a.revenue_3d, a.revenue_7d,
    a.revenue_1d / nullif(a.spend_1d, 0) AS roas_1d,
    a.revenue_3d / nullif(a.spend_3d, 0) AS roas_3d,
    a.revenue_7d / nullif(a.spend_7d, 0) AS roas_7d,
    a.spend_window, a.purchases_window, a.revenue_window, a.impressions_window, a.clicks_window,
    a.revenue_window / nullif(a.spend_window, 0) AS roas_window,
    a.spend_window / nullif(a.purchases_window, 0) AS cpa_window,
    a.clicks_window / nullif(a.impressions_window, 0) AS ctr_window,
    a.purchases_window / nullif(a.clicks_window, 0) AS cvr_window,
    a.roas_day1 / nullif(a.roas_day2, 0) - 1 AS roas_dod_change,
    a.roas_slope,
    a.cpa_stddev AS cpa_volatility,
    a.cpa_stddev / nullif(a.spend_window / nullif(a.purchases_window, 0), 0) AS cpa_cv,
    (a.spend_late / $late_days) / nullif(a.spend_early / ($window - $late_days), 0) - 1 AS spend_acceleration,
    a.spend_early, a.purchases_early, a.revenue_early,
    a.spend_late, a.purchases_late, a.revenue_late,
    a.spend_recent, a.purchases_recent, a.revenue_recent,
    a.active_days,
    coalesce(p.purchase_dispersion, 0) AS purchase_dispersion,
    $long_window::INTEGER AS long_window_days,
    a.spend_long, a.purchases_long, a.revenue_long,
    a.revenue_long / nullif(a.spend_long, 0) AS roas_long,
    s.first_spend_date,
    s.last_spend_date
FROM latest l
JOIN agg a USING (account_id, adset_id)
LEFT JOIN disp p USING (account_id, adset_id)
LEFT JOIN spend_days s USING (account_id, adset_id)
ORDER BY l.account_id, l.adset_id
