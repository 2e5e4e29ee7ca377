# Module logic only: the AWS provider is mocked, nothing is created anywhere.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/test", user_id = "AIDTEST" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:test-obs-alarms" }
  }
  mock_resource "aws_cloudwatch_metric_alarm" {
    defaults = { arn = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:test-obs-mock" }
  }
}

variables {
  name_prefix = "test-obs"
  kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
  tags        = { Project = "inferstack-test" }
}

run "whole_stack" {
  command = apply

  variables {
    api_name                 = "test-obs-api"
    api_stage_name           = "v1"
    predict_function_name    = "test-obs-predict"
    predict_log_group_name   = "/aws/lambda/test-obs-predict"
    dispatcher_function_name = "test-obs-dispatcher"
    queue_name               = "test-obs-events"
    dlq_name                 = "test-obs-events-dlq"
    job_queue_name           = "test-obs-jobs"
    job_queue_arn            = "arn:aws:batch:eu-west-1:123456789012:job-queue/test-obs-jobs"
    alarm_email_addresses    = ["ops@example.com"]
  }

  assert {
    condition     = aws_sns_topic.alarms[0].kms_master_key_id == var.kms_key_arn && aws_sns_topic.alarms[0].name == "test-obs-alarms"
    error_message = "the alarm topic must be encrypted with the given key"
  }
  assert {
    condition     = [for s in data.aws_iam_policy_document.topic[0].statement : s.sid] == ["CloudWatchAlarmsOfThisStack", "EventBridgeRulesOfThisStack", "DenyInsecureTransport"]
    error_message = "topic policy must allow this stack's alarms and rules and deny plain HTTP"
  }
  assert {
    condition     = one(data.aws_iam_policy_document.topic[0].statement[0].condition).values == tolist(["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:test-obs-*"])
    error_message = "CloudWatch may only publish for this stack's alarms"
  }
  assert {
    condition     = aws_sns_topic_subscription.email["ops@example.com"].protocol == "email"
    error_message = "e-mail addresses must be subscribed"
  }
  assert {
    condition = (aws_cloudwatch_metric_alarm.api_5xx_rate[0].metric_name == "5XXError" && aws_cloudwatch_metric_alarm.api_5xx_rate[0].statistic == "Average"
    && aws_cloudwatch_metric_alarm.api_5xx_rate[0].threshold == 0.01 && aws_cloudwatch_metric_alarm.api_5xx_rate[0].dimensions == tomap({ ApiName = "test-obs-api", Stage = "v1" }))
    error_message = "5xx alarm must watch the 5XXError rate of the API stage"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.api_p99_latency[0].extended_statistic == "p99" && aws_cloudwatch_metric_alarm.api_p99_latency[0].threshold == 3000
    error_message = "latency alarm must watch p99"
  }
  assert {
    condition     = keys(aws_cloudwatch_metric_alarm.lambda_errors) == ["dispatcher", "predict"] && keys(aws_cloudwatch_metric_alarm.lambda_throttles) == ["dispatcher", "predict"]
    error_message = "errors and throttles alarms for both functions"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.lambda_errors["predict"].dimensions["FunctionName"] == "test-obs-predict"
    error_message = "function alarms must use the FunctionName dimension"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.dlq_not_empty[0].dimensions["QueueName"] == "test-obs-events-dlq" && aws_cloudwatch_metric_alarm.dlq_not_empty[0].metric_name == "ApproximateNumberOfMessagesVisible"
    error_message = "DLQ alarm must watch visible messages of the DLQ"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.batch_images_failed[0].namespace == "Inferstack" && aws_cloudwatch_metric_alarm.batch_images_failed[0].metric_name == "BatchImagesFailed" && aws_cloudwatch_metric_alarm.batch_images_failed[0].dimensions["service"] == "inferstack-batch-worker" && length(aws_cloudwatch_metric_alarm.batch_images_failed[0].dimensions) == 1
    error_message = "failed-images alarm must watch the worker's EMF metric with its service dimension"
  }
  assert {
    condition     = alltrue([for a in concat(aws_cloudwatch_metric_alarm.api_5xx_rate, values(aws_cloudwatch_metric_alarm.lambda_errors), aws_cloudwatch_metric_alarm.dlq_not_empty) : a.alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:test-obs-alarms"]) && startswith(a.alarm_name, "test-obs-")])
    error_message = "alarms must be named with the prefix (the topic policy relies on it) and notify the topic"
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.batch_job_failed[0].event_pattern).detail == { status = ["FAILED"], jobQueue = ["arn:aws:batch:eu-west-1:123456789012:job-queue/test-obs-jobs"] }
    error_message = "the event rule must match FAILED jobs of the job queue"
  }
  assert {
    condition     = aws_cloudwatch_event_target.batch_job_failed[0].arn == "arn:aws:sns:eu-west-1:123456789012:test-obs-alarms"
    error_message = "failed job events must go to the alarm topic"
  }
  assert {
    condition     = aws_xray_sampling_rule.this[0].rule_name == "test-obs-sampling" && aws_xray_sampling_rule.this[0].fixed_rate == 0.05
    error_message = "an X-Ray sampling rule is created by default"
  }
  assert {
    condition = toset([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.title]) == toset([
      "Alarms", "API latency (ms)", "API requests and errors", "Predict function duration (ms)", "Predict function invocations, errors, throttles",
      "Predict function concurrency", "Inference stages (ms, p50 / p99)", "Predictions and errors", "Cold starts: init duration (ms)",
    "Queue depth", "Dispatcher", "Batch images (test-obs-jobs)"])
    error_message = "the dashboard must show every part"
  }
  assert {
    condition = contains(flatten([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets :
    [for m in try(w.properties.metrics, []) : jsonencode(m)]]), jsonencode(["Inferstack", "InferLatency", "service", "inferstack-predict", { stat = "p99", label = "InferLatency p99" }]))
    error_message = "the dashboard must graph the function's own InferLatency p99 with its service dimension"
  }
  assert {
    condition     = length(output.alarm_arns) == 8 && length(output.alarm_names) == 8
    error_message = "eight alarms for the whole stack"
  }
  assert {
    condition     = aws_sns_topic.alarms[0].tags["Project"] == "inferstack-test" && aws_cloudwatch_metric_alarm.api_5xx_rate[0].tags["Project"] == "inferstack-test" && aws_xray_sampling_rule.this[0].tags["Project"] == "inferstack-test"
    error_message = "tags must be applied everywhere"
  }
}

run "nothing_to_watch" {
  command = plan

  assert {
    condition     = length(output.alarm_names) == 0 && length(aws_cloudwatch_event_rule.batch_job_failed) == 0
    error_message = "no alarms without names"
  }
  assert {
    condition     = [for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.type] == ["text"]
    error_message = "an empty dashboard gets a single text widget"
  }
}

run "api_only" {
  command = plan

  variables {
    api_name       = "my-api"
    api_stage_name = "prod"
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.api_5xx_rate) == 1 && length(aws_cloudwatch_metric_alarm.lambda_errors) == 0 && length(aws_cloudwatch_metric_alarm.batch_images_failed) == 0 && length(aws_cloudwatch_metric_alarm.dlq_not_empty) == 0
    error_message = "only API alarms for an API-only stack"
  }
}

run "existing_topic" {
  command = plan

  variables {
    create_sns_topic = false
    kms_key_arn      = null
    sns_topic_arn    = "arn:aws:sns:eu-west-1:123456789012:central-alarms"
    dlq_name         = "q-dlq"
  }

  assert {
    condition     = length(aws_sns_topic.alarms) == 0 && length(aws_sns_topic_policy.alarms) == 0
    error_message = "no topic when create_sns_topic is false"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.dlq_not_empty[0].alarm_actions == toset(["arn:aws:sns:eu-west-1:123456789012:central-alarms"])
    error_message = "alarms must notify the given topic"
  }
}

run "no_topic_at_all" {
  command = plan

  variables {
    create_sns_topic = false
    kms_key_arn      = null
    dlq_name         = "q-dlq"
    job_queue_name   = "q"
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.dlq_not_empty[0].alarm_actions) == 0 && length(aws_cloudwatch_event_target.batch_job_failed) == 0
    error_message = "alarms without actions and no event target when there is no topic"
  }
}

run "switches_off" {
  command = plan

  variables {
    create_alarms                          = false
    create_dashboard                       = false
    create_xray_sampling_rule              = false
    enable_batch_job_failure_notifications = false
    api_name                               = "my-api"
    api_stage_name                         = "prod"
    predict_function_name                  = "fn"
    job_queue_name                         = "q"
  }

  assert {
    condition     = length(output.alarm_names) == 0 && length(aws_cloudwatch_dashboard.this) == 0 && length(aws_xray_sampling_rule.this) == 0 && length(aws_cloudwatch_event_rule.batch_job_failed) == 0
    error_message = "switches must turn alarms, dashboard, sampling rule and job notifications off"
  }
  assert {
    condition     = output.dashboard_name == null && output.xray_sampling_rule_arn == null
    error_message = "outputs of switched-off parts are null"
  }
}

run "custom_metric_names_and_thresholds" {
  command = plan

  variables {
    predict_function_name = "fn"
    job_queue_name        = "jobs"
    metric_namespace      = "MyNamespace"
    realtime_metrics      = { service = "svc", infer_latency = "InferMs" }
    batch_metrics         = { worker_service = "wrk", images_failed = "ImagesFailed" }
    alarm_thresholds      = { lambda_errors = 5, evaluation_periods = 3, datapoints_to_alarm = 2 }
  }

  assert {
    condition     = aws_cloudwatch_metric_alarm.batch_images_failed[0].namespace == "MyNamespace" && aws_cloudwatch_metric_alarm.batch_images_failed[0].metric_name == "ImagesFailed" && aws_cloudwatch_metric_alarm.batch_images_failed[0].dimensions["service"] == "wrk"
    error_message = "metric names, namespace and service must be configurable"
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.lambda_errors["predict"].threshold == 5 && aws_cloudwatch_metric_alarm.lambda_errors["predict"].evaluation_periods == 3 && aws_cloudwatch_metric_alarm.lambda_errors["predict"].datapoints_to_alarm == 2
    error_message = "thresholds must be configurable"
  }
  assert {
    condition     = strcontains(aws_cloudwatch_dashboard.this[0].dashboard_body, "\"InferMs\"") && strcontains(aws_cloudwatch_dashboard.this[0].dashboard_body, "\"svc\"")
    error_message = "the dashboard must use the configured metric names"
  }
}

run "job_queue_arn_from_name" {
  command = plan

  variables {
    job_queue_name = "jobs"
  }

  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.batch_job_failed[0].event_pattern).detail.jobQueue == ["arn:aws:batch:eu-west-1:123456789012:job-queue/jobs"]
    error_message = "without job_queue_arn, the rule must match the queue's ARN built from its name"
  }
}

run "topic_requires_key" {
  command = plan
  variables {
    kms_key_arn = null
  }
  expect_failures = [var.kms_key_arn]
}

run "name_prefix_too_long_for_sampling_rule" {
  command = plan
  variables {
    name_prefix = "a-very-long-stack-name-prefix"
  }
  expect_failures = [var.name_prefix]
}

run "api_requires_stage" {
  command = plan
  variables {
    api_name = "my-api"
  }
  expect_failures = [var.api_stage_name]
}

run "bad_email" {
  command = plan
  variables {
    alarm_email_addresses = ["not-an-address"]
  }
  expect_failures = [var.alarm_email_addresses]
}

run "rate_is_a_fraction" {
  command = plan
  variables {
    alarm_thresholds = { api_5xx_rate = 5 }
  }
  expect_failures = [var.alarm_thresholds]
}

run "m_of_n" {
  command = plan
  variables {
    alarm_thresholds = { evaluation_periods = 2, datapoints_to_alarm = 3 }
  }
  expect_failures = [var.alarm_thresholds]
}

run "fixed_rate_range" {
  command = plan
  variables {
    xray_sampling = { fixed_rate = 2 }
  }
  expect_failures = [var.xray_sampling]
}

run "job_queue_arn_format" {
  command = plan
  variables {
    job_queue_arn = "jobs"
  }
  expect_failures = [var.job_queue_arn]
}

run "namespace_not_aws" {
  command = plan
  variables {
    metric_namespace = "AWS/Lambda"
  }
  expect_failures = [var.metric_namespace]
}

run "no_canary_no_candidate_alarms" {
  # apply: the dashboard body holds the alarms' ARNs, known only once they exist.
  command = apply

  variables {
    predict_function_name = "demo-predict"
  }

  assert {
    condition     = length(aws_cloudwatch_metric_alarm.canary_error_rate) + length(aws_cloudwatch_metric_alarm.canary_p99_latency) + length(aws_cloudwatch_metric_alarm.canary_init_failures) == 0
    error_message = "without a canary there are no candidate alarms"
  }
  assert {
    condition     = length([for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w if startswith(try(w.properties.title, ""), "Canary:")]) == 0
    error_message = "without a canary the dashboard has no canary row"
  }
}

run "canary_alarms_compare_the_candidate_with_the_primary" {
  # apply: the dashboard body holds the alarms' ARNs, known only once they exist.
  command = apply

  variables {
    predict_function_name = "demo-predict"
    canary = {
      primary_sha256   = "ab3c9bae6bb2699ebe9ec98b2d6fa3372588a1f295314397878ba1e0b3ccff44"
      candidate_sha256 = "6676485e960205118895817ca209585870d517fc25466f264077a8ebc53d21b6"
    }
  }

  assert {
    condition = toset(flatten([
      for a in [aws_cloudwatch_metric_alarm.canary_error_rate[0], aws_cloudwatch_metric_alarm.canary_p99_latency[0], aws_cloudwatch_metric_alarm.canary_init_failures[0]] : [
        for q in a.metric_query : [for m in q.metric : m.dimensions["ModelSha256"]]
      ]
    ])) == toset(["ab3c9bae6bb2", "6676485e9602"])
    error_message = "the candidate alarms must watch the two models by the ModelSha256 the function emits (12 hex digits)"
  }
  assert {
    condition = alltrue(flatten([
      for q in aws_cloudwatch_metric_alarm.canary_init_failures[0].metric_query : [for m in q.metric : m.dimensions["ModelSha256"] == "6676485e9602" && m.dimensions["service"] == "inferstack-predict"]
    ]))
    error_message = "the init-failure alarm watches the candidate only, in the function's service"
  }
  assert {
    condition     = one([for q in aws_cloudwatch_metric_alarm.canary_p99_latency[0].metric_query : q.expression if q.return_data == true]) == "c99 / p99" && aws_cloudwatch_metric_alarm.canary_p99_latency[0].threshold == 1.5
    error_message = "the latency alarm compares the candidate's p99 with the primary's"
  }
  assert {
    condition     = output.canary_alarm_names == { error_rate = "test-obs-canary-error-rate", p99_latency = "test-obs-canary-p99-latency", init_failures = "test-obs-canary-init-failures" }
    error_message = "the candidate alarms must be named after the stack"
  }
  assert {
    condition = [for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : w.properties.title if startswith(try(w.properties.title, ""), "Canary:")] == [
      "Canary: answers by model", "Canary: error rate by model (%)", "Canary: total latency by model (ms)", "Canary: top-1 probability by model",
    ]
    error_message = "the dashboard shows a row comparing the candidate with the primary"
  }
  assert {
    condition = toset(flatten([
      for w in jsondecode(aws_cloudwatch_dashboard.this[0].dashboard_body).widgets : [
        for m in w.properties.metrics : [for i, item in m : m[i + 1] if item == "ModelSha256"]
      ] if startswith(try(w.properties.title, ""), "Canary:")
    ])) == toset(["ab3c9bae6bb2", "6676485e9602"])
    error_message = "the dashboard's canary row graphs the two models by the ModelSha256 the function emits"
  }
}

run "canary_of_one_model_is_refused" {
  command = plan
  variables {
    canary = { primary_sha256 = "ab3c9bae6bb2", candidate_sha256 = "ab3c9bae6bb2" }
  }
  expect_failures = [var.canary]
}
