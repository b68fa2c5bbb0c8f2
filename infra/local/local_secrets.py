"""Demo values for the local stack's secrets (Secrets Manager on moto).

create_resources.py creates the template's secrets in moto: the generated ones
(phone-hash, staff-tokens) with random values, the ones operators fill in
(webhooks, notifier) as "{}". This puts demo values into those two while they
still hold "{}" (a secret with anything else is left alone, so a re-run or a
test's own value is never overwritten):

- WEBHOOK_SECRET_ID: the platforms' secrets in the deployed shape (README,
  "Configuration"), with fresh random keys: the demo's Douyin app, one HMAC
  secret per HMAC source, the sample directory's two WeCom corps;
- NOTIFIER_SECRET_ID: the keys of infra/demo.sh's local WeCom/SMS/CRM stand-in.

Run by infra/local/stack.sh with the stack's env (endpoint, region, dummy
credentials, the *_SECRET_ID ids). Writes no file and prints no secret: the
values stay in the emulator; read them there (get-secret-value) if needed.
"""

import json
import os
import secrets
import string
import sys

import boto3

B64 = string.ascii_letters + string.digits + "+/"


def webhooks():
    return {
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
                "encoding_aes_key": "".join(secrets.choice(B64) for _ in range(42)) + "A",
            }
            for corp_id in ["ww-hongtu-corp", "ww-xinglan-corp"]
        ],
    }


def notifier():
    # The values infra/demo.sh's stand-in receiver (lead-demo) expects.
    return {
        "wecom_corp_secret": "demo-corp-secret",
        "sms_api_key": "demo-sms-key",
        "crm_webhook_secret": "demo-crm-secret",
    }


def fill(sm, var, make):
    secret_id = os.environ.get(var)
    if not secret_id:
        sys.exit(f"local_secrets: {var} is not set (create_resources.py makes the secrets)")
    current = sm.get_secret_value(SecretId=secret_id).get("SecretString", "")
    try:
        empty = json.loads(current) == {}
    except ValueError:
        empty = False
    name = secret_id.split(":secret:", 1)[-1]
    if not empty:
        print(f"local_secrets: {name} holds a value already; kept", file=sys.stderr)
        return
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(make()))
    print(f"local_secrets: {name}: demo values put", file=sys.stderr)


def main():
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=os.environ.get("MOTO_ENDPOINT") or os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    fill(sm, "WEBHOOK_SECRET_ID", webhooks)
    fill(sm, "NOTIFIER_SECRET_ID", notifier)


if __name__ == "__main__":
    main()
