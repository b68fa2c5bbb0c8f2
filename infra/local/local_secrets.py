"""Local stand-in for the deployment secret (Secrets Manager in AWS).

Creates <repo>/.local/secrets.json once, with fresh random keys (never committed:
.local/ is gitignored), in the same JSON shape as the deployed secret (README,
"Configuration"), then prints the variables the template resolves from it:
INTAKE_SECRETS (the whole secret), API_TOKEN_SECRET and PHONE_HASH_KEY (its keys).
"""

import json
import os
import secrets
import shlex
import string
import sys

path = sys.argv[1]
if not os.path.exists(path):
    b64 = string.ascii_letters + string.digits + "+/"
    value = {
        "phone_hash_key": secrets.token_hex(32),
        "api_token_secret": secrets.token_hex(32),
        # The demo's Douyin app; add your own apps' client_key -> client_secret.
        "douyin": {"awx-demo-app": secrets.token_hex(16)},
        "hmac": {
            source: {"secrets": [secrets.token_hex(16)]}
            for source in ["feiyu", "dongchedi", "autohome", "yiche", "oem_crm"]
        },
        # The sample directory's WeCom corps (data/sample-directory.json).
        "wecom": [
            {
                "corp_id": corp_id,
                "token": secrets.token_hex(8),
                # EncodingAESKey: 43 characters of the base64 alphabet.
                "encoding_aes_key": "".join(secrets.choice(b64) for _ in range(42)) + "A",
            }
            for corp_id in ["ww-hongtu-corp", "ww-xinglan-corp"]
        ],
    }
    with open(path, "w") as f:
        json.dump(value, f, indent=1)
    os.chmod(path, 0o600)

with open(path) as f:
    value = json.load(f)
print(f"export INTAKE_SECRETS={shlex.quote(json.dumps(value, separators=(',', ':')))}")
print(f"export API_TOKEN_SECRET={shlex.quote(value['api_token_secret'])}")
print(f"export PHONE_HASH_KEY={shlex.quote(value['phone_hash_key'])}")
