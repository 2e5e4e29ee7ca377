"""`inferstack local demo`: real photos through both paths of the locally running stack."""

from __future__ import annotations

import io
import json
import mimetypes
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from inferstack.local.discovery import client
from inferstack.local.iam import admin_keys
from inferstack.local.stack import REPO_ROOT, say, stack_session

# Photos shipped inside scikit-image (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
DEMO_PREFIX = "input/demo/"


def demo_images(extra_dir: Path | None) -> dict[str, bytes]:
    """name -> encoded image: scikit-image's sample photos as JPEG, plus IMAGES=dir files."""
    images: dict[str, bytes] = {}
    try:
        from PIL import Image  # noqa: PLC0415 - only the demo needs these
        from skimage import data  # noqa: PLC0415
    except ImportError as exc:
        say(f"scikit-image not available ({exc}); using only IMAGES=dir")
    else:
        for name in SKIMAGE_PHOTOS:
            buf = io.BytesIO()
            Image.fromarray(getattr(data, name)()).convert("RGB").save(buf, "JPEG", quality=90)
            images[f"{name}.jpg"] = buf.getvalue()
    if extra_dir is not None:
        for path in sorted(extra_dir.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                images[path.name] = path.read_bytes()
    return images


def post_image(
    url: str, api_key: str | None, data: bytes, name: str = "x.jpg"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": mimetypes.guess_type(name)[0] or "application/octet-stream"}
    if api_key:
        headers["x-api-key"] = api_key
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - local
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def model_is_meaningful(bundle_dir: Path) -> bool:
    try:
        meta = json.loads((bundle_dir / "model.json").read_text())
    except (OSError, ValueError):
        return True
    return bool(meta.get("predictions_meaningful", True))


def format_predictions(predictions: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['label']} {p['probability']:.3f}" for p in predictions)


def wait_for_outputs(s3: Any, bucket: str, keys: list[str], timeout: float) -> dict[str, dict]:
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(keys) and time.monotonic() < deadline:
        for key in keys:
            if key in found:
                continue
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
            found[key] = json.loads(body)
        if len(found) < len(keys):
            time.sleep(2)
    return found


def output_key(input_key: str) -> str:
    return "output/" + input_key.removeprefix("input/") + ".json"


def run_demo(
    *, images_dir: Path | None, model_dir: Path | None, keep: bool, root: Path = REPO_ROOT
) -> int:
    started = time.monotonic()
    images = demo_images(images_dir)
    if not images:
        say("no images to send")
        return 2
    with stack_session(root=root, model_dir=model_dir, keep=keep) as ep:
        url, key = ep["api_url"], ep["api_key"]
        status, body = post_image(url, None, next(iter(images.values())))
        print(f"\nPOST {url} without an API key -> {status} {json.dumps(body)}")
        print(f"\nReal time: POST {url} (x-api-key)")
        if not model_is_meaningful(Path(ep["model_bundle_dir"])):
            print("  (the deployed model has RANDOM weights: the labels below are meaningless)")
        for name, data in images.items():
            status, body = post_image(url, key, data, name)
            if status == 200:
                ms = body.get("timing_ms", {}).get("total")
                print(f"  {name:24s} {status} {format_predictions(body['predictions'])}"
                      + (f"  ({ms:.0f} ms in the function)" if ms else ""))  # fmt: skip
            else:
                print(f"  {name:24s} {status} {json.dumps(body)}")

        s3 = client("s3", ep["emulator_url"], ep["region"])
        uploads = {f"{DEMO_PREFIX}{name}": data for name, data in images.items()}
        uploads[f"{DEMO_PREFIX}not-an-image.jpg"] = b"this is not a JPEG"
        print(
            f"\nBatch: uploading {len(uploads)} objects to s3://{ep['data_bucket']}/{DEMO_PREFIX}"
        )
        for object_key, data in uploads.items():
            s3.put_object(Bucket=ep["data_bucket"], Key=object_key, Body=data)
        wanted = [output_key(k) for k in uploads]
        results = wait_for_outputs(s3, ep["data_bucket"], wanted, timeout=300)
        for object_key in wanted:
            record = results.get(object_key)
            if record is None:
                print(f"  {object_key:40s} (no output yet)")
            elif "error" in record:
                error = record["error"]
                print(f"  {object_key:40s} error {error['code']}: {error['message']}")
            else:
                print(f"  {object_key:40s} {format_predictions(record['predictions'][:5])}")
        print_batch_jobs(ep)
        print_where_to_look(ep, keep)
        say(f"demo took {time.monotonic() - started:.0f} s")
        return 0 if len(results) == len(wanted) else 1


def print_batch_jobs(ep: dict[str, Any], timeout: float = 60) -> None:
    """The array jobs and their final status: a job's last outputs land a moment before its
    children write their summaries and exit, so wait (bounded) for it to end."""
    batch = client("batch", ep["emulator_url"], ep["region"])
    every = [{"name": "JOB_NAME", "values": ["*"]}]
    jobs = batch.list_jobs(jobQueue=ep["job_queue"], filters=every)
    parents = [j for j in jobs.get("jobSummaryList", []) if ":" not in j["jobId"]]
    deadline = time.monotonic() + timeout
    for job in parents:
        detail = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
        while detail["status"] not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
            time.sleep(0.5)
            detail = batch.describe_jobs(jobs=[job["jobId"]])["jobs"][0]
        summary = detail.get("arrayProperties", {}).get("statusSummary")
        print(f"  Batch job {job['jobName']} {job['jobId']}: {detail['status']}"
              + (f" children {summary}" if summary else ""))  # fmt: skip


def print_where_to_look(ep: dict[str, Any], keep: bool) -> None:
    print("\nWhere to look:")
    print(f"  API           {ep['api_url']}")
    print(f"  API key       {ep['api_key']}")
    print(f"  emulator      {ep['emulator_url']}  (moto dashboard: {ep['emulator_url']}/moto-api/)")
    print(f"  data bucket   s3://{ep['data_bucket']}/  (input/ -> output/)")
    print(f"  model bucket  s3://{ep['model_bucket']}/")
    print(f"  logs          {ep['logs']}")
    print(f"  curl -s -H 'x-api-key: {ep['api_key']}' -H 'Content-Type: image/jpeg' "
          f"--data-binary @photo.jpg {ep['api_url']}")  # fmt: skip
    # The emulator enforces IAM: only the admin it was started with may look around.
    admin = admin_keys(ep["emulator_url"])
    print(f"  AWS_ENDPOINT_URL={ep['emulator_url']} AWS_ACCESS_KEY_ID={admin.access_key_id} "
          f"AWS_SECRET_ACCESS_KEY={admin.secret_access_key} "
          f"aws s3 ls s3://{ep['data_bucket']}/output/ --recursive")  # fmt: skip
    if not keep:
        print("  (the stack is torn down now; KEEP=1 keeps it running)")
    sys.stdout.flush()
