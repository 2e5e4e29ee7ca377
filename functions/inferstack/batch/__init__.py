"""Batch inference: manifests, sharding, job submission, the worker pipeline and its records.

Layout of what batch writes in the data bucket (prefixes come from the environment)::

    manifests/<id>.json              manifest header (bucket, count, images per child, shards)
    manifests/<id>.submitted         submission marker (claim, then the submitted job id)
    manifests/shards/<sha256>.jsonl  one shard per array child: {"key", "etag"} per line
    output/<key relative to input/>.json           one record per image (result or error)
    output/_summaries/<job id>/<array index>.json  one summary per array child
    output/_summaries/<job id>.json                the job's summary, once every child wrote its own

Only the modules a caller needs are imported: the dispatcher Lambda never imports numpy or
the TFLite runtime.
"""
