"""Signs requests with botocore's SigV4 signer, as the AWS CLI and boto3 do.

Reads a JSON list of {"method", "url", "params"} from stdin; "params" is a
list of [name, value] pairs that botocore encodes itself, or null to sign the
URL's query as it is written. Writes a JSON list of {"url", "headers"}: the
URL botocore would send and the headers it signed.
"""
import json
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

creds = Credentials(sys.argv[1], sys.argv[2])
out = []
for spec in json.load(sys.stdin):
    params = [tuple(p) for p in spec["params"]] if spec["params"] is not None else None
    req = AWSRequest(method=spec["method"], url=spec["url"], params=params)
    SigV4Auth(creds, "aps", sys.argv[3]).add_auth(req)
    prepared = req.prepare()
    out.append({"url": prepared.url, "headers": dict(prepared.headers.items())})
json.dump(out, sys.stdout)
