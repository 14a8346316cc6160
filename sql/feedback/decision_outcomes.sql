-- For analysts: every decision beside what happened after it (one row per decision and horizon) and
-- whether, when and by whom it was executed. Decisions without a matured horizon have NULL outcomes.
SELECT
    d.decision_date,
    d.account_id,
    d.adset_id,
    d.adset_name,
    d.audience_type,
    d.bucket,
    d.trend,
    d.matrix_rule,
    d.guardrail,
    d.gate_reason,
    d.action,
    d.scale_percentage,
    d.confidence,
    d.act_probability,
    d.normalized_roas AS decision_roas_ratio,
    d.config_hash,
    o.horizon_days,
    o.rule_branch,
    o.label,
    o.roas_ratio AS horizon_roas_ratio,
    o.spend AS horizon_spend,
    o.revenue AS horizon_revenue,
    o.maturing_fraction,
    o.marginal_roas,
    o.value,
    o.gained,
    o.lost,
    a.action_id,
    a.outcome AS execution_outcome,
    a.approved_by,
    a.finished_at AS executed_at,
    a.learning_restarted
FROM decisions d
LEFT JOIN outcomes o USING (decision_date, account_id, adset_id)
LEFT JOIN (
    SELECT * FROM action_log WHERE mode = 'apply' AND outcome = 'applied' AND reverts_action_id IS NULL
) a USING (decision_date, adset_id)
