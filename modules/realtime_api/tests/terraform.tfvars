# The variables every test file of this folder starts from (terraform test loads a test
# folder's terraform.tfvars for the tests in it; a file's or a run's own variables win).
# https://developer.hashicorp.com/terraform/language/tests#specify-variables-with-the-command-line-or-definition-files

name_prefix       = "demo"
function_zip_path = "tests/fixtures/function.zip"
layer_zip_path    = "tests/fixtures/layer.zip"
model_uri         = "s3://demo-models/models/resnet50-int8/1/"
model_bucket_arn  = "arn:aws:s3:::demo-models"
kms_key_arn       = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
tags              = { Project = "inferstack", Env = "test" }
