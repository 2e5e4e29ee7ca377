################################################################################
# Canary rollout: the candidate model against the primary (var.canary)
################################################################################

# The real-time function emits every metric twice: for the service, and by ModelSha256 (12 hex
# digits of the model's sha256). The alarms below compare the two models' series; the
# service-wide alarms keep watching the service-only series.
locals {
  has_canary = var.canary != null && local.has_predict
  canary_models = local.has_canary ? {
    primary   = substr(var.canary.primary_sha256, 0, 12)
    candidate = substr(var.canary.candidate_sha256, 0, 12)
  } : {}
  canary_dims = { for role, sha in local.canary_models : role => { service = local.rt.service, ModelSha256 = sha } }

  # What the three candidate alarms share.
  canary_alarm_count = var.create_alarms && local.has_canary ? 1 : 0
  canary_alarm = {
    comparison_operator = "GreaterThanThreshold"
    treat_missing_data  = "notBreaching"
  }

  # The per-model series each alarm's metric math reads, by query id: the model (role), the
  # metric, its statistic and period.
  canary_series = {
    error_rate = {
      for id, q in {
        ce = ["candidate", local.rt.errors]
        cp = ["candidate", local.rt.predictions]
        pe = ["primary", local.rt.errors]
        pp = ["primary", local.rt.predictions]
      } : id => { role = q[0], metric = q[1], stat = "Sum", period = var.alarm_thresholds.period_seconds }
    }
    p99_latency = {
      for id, role in { c99 = "candidate", p99 = "primary" } :
      id => { role = role, metric = local.rt.total_latency, stat = "p99", period = var.alarm_thresholds.period_seconds }
    }
    # A model that does not load shows in the first minute's sums, whatever the alarm period.
    init_failures = {
      for id, metric in { ce = local.rt.errors, cp = local.rt.predictions } :
      id => { role = "candidate", metric = metric, stat = "Sum", period = max(var.alarm_thresholds.period_seconds, 60) }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "canary_error_rate" {
  count = local.canary_alarm_count

  alarm_name          = "${var.name_prefix}-canary-error-rate"
  alarm_description   = "The candidate model ${local.canary_models.candidate} answers errors more often than the primary ${local.canary_models.primary} (by more than ${var.canary.error_rate_margin * 100} points): roll back (canary.weight = 0)."
  evaluation_periods  = var.alarm_thresholds.evaluation_periods
  datapoints_to_alarm = var.alarm_thresholds.datapoints_to_alarm
  threshold           = var.canary.error_rate_margin
  comparison_operator = local.canary_alarm.comparison_operator
  treat_missing_data  = local.canary_alarm.treat_missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "excess"
    expression  = "FILL(ce, 0) / MAX([FILL(ce, 0) + FILL(cp, 0), 1]) - FILL(pe, 0) / MAX([FILL(pe, 0) + FILL(pp, 0), 1])"
    label       = "candidate error rate minus primary error rate"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.canary_series.error_rate
    content {
      id = metric_query.key
      metric {
        namespace   = local.ns
        metric_name = metric_query.value.metric
        dimensions  = local.canary_dims[metric_query.value.role]
        stat        = metric_query.value.stat
        period      = metric_query.value.period
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "canary_p99_latency" {
  count = local.canary_alarm_count

  alarm_name          = "${var.name_prefix}-canary-p99-latency"
  alarm_description   = "p99 total latency of the candidate model ${local.canary_models.candidate} above ${var.canary.p99_latency_ratio} times the primary's (${local.canary_models.primary})."
  evaluation_periods  = var.alarm_thresholds.evaluation_periods
  datapoints_to_alarm = var.alarm_thresholds.datapoints_to_alarm
  threshold           = var.canary.p99_latency_ratio
  comparison_operator = local.canary_alarm.comparison_operator
  treat_missing_data  = local.canary_alarm.treat_missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "ratio"
    expression  = "c99 / p99"
    label       = "candidate p99 / primary p99"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.canary_series.p99_latency
    content {
      id = metric_query.key
      metric {
        namespace   = local.ns
        metric_name = metric_query.value.metric
        dimensions  = local.canary_dims[metric_query.value.role]
        stat        = metric_query.value.stat
        period      = metric_query.value.period
      }
    }
  }
}

# A candidate whose model does not load (integrity, unreadable bundle) answers every request
# with 503 model_unavailable: errors and no prediction at all.
resource "aws_cloudwatch_metric_alarm" "canary_init_failures" {
  count = local.canary_alarm_count

  alarm_name          = "${var.name_prefix}-canary-init-failures"
  alarm_description   = "The candidate model ${local.canary_models.candidate} answers nothing but errors: its model does not load (503 model_unavailable; the function's logs have the cause). Roll back (canary.weight = 0)."
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = local.canary_alarm.comparison_operator
  treat_missing_data  = local.canary_alarm.treat_missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags

  metric_query {
    id          = "unloaded"
    expression  = "IF(FILL(ce, 0) > 0 AND FILL(cp, 0) == 0, 1, 0)"
    label       = "candidate answered only errors"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.canary_series.init_failures
    content {
      id = metric_query.key
      metric {
        namespace   = local.ns
        metric_name = metric_query.value.metric
        dimensions  = local.canary_dims[metric_query.value.role]
        stat        = metric_query.value.stat
        period      = metric_query.value.period
      }
    }
  }
}
