"""Masking of secrets before anything leaves a runner."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from kobot.job_records import JobEvent
from tests.workers.test_ansible_runner import SECRET, local_inventory, make_run, never
from workers.ansible import PlaybookStatus, run_playbook
from workers.masking import MASK, Masker, encodings_of

ENCODING_PLAY = """
# A careless playbook that prints a secret from the environment in the encodings tasks use.
- name: Print encoded secrets
  hosts: all
  connection: local
  gather_facts: false
  vars:
    secret: "{{ lookup('ansible.builtin.env', 'DB_ADMIN_PASSWORD') }}"
  tasks:
    - name: Print base64
      ansible.builtin.debug:
        msg: "b64 {{ secret | b64encode }}"
    - name: Print a Basic header
      ansible.builtin.debug:
        msg: "basic {{ ('admin:' ~ secret) | b64encode }}"
    - name: Print the secret in a URL
      ansible.builtin.debug:
        msg: "url https://db.example/?p={{ secret | urlencode }}"
    - name: Print url-safe base64 without padding
      ansible.builtin.debug:
        msg: "b64url {{ ('x' ~ secret) | b64encode | replace('+', '-') | replace('/', '_') | trim('=') }}"
"""


def test_exact_values_are_masked_longest_first() -> None:
    masker = Masker(values=["abc123xyz", "abc123xyz-long-version", ""])
    assert masker.mask("a=abc123xyz-long-version b=abc123xyz") == f"a={MASK} b={MASK}"


def test_json_escaped_values_are_masked() -> None:
    masker = Masker(values=['pa"ss\\word'])
    assert masker.mask('{"msg": "pa\\"ss\\\\word"}') == f'{{"msg": "{MASK}"}}'


def test_well_known_shapes_are_masked_without_being_told() -> None:
    masker = Masker()
    kubeconfig = (
        "users:\n- name: admin\n  user:\n    client-key-data: LS0tLS1CRUdJTiBSU0Eg\n    token: abc.def\n"
    )
    masked = masker.mask(kubeconfig)
    assert "LS0tLS1CRUdJTiBSU0Eg" not in masked and "abc.def" not in masked
    assert f"client-key-data: {MASK}" in masked
    assert masker.mask("kubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef") == (
        f"kubeadm join 10.0.0.1:6443 --token {MASK}"
    )
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
    assert masker.mask(f"key:\n{key}\nafter") == f"key:\n{MASK}\nafter"
    assert masker.mask("Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.x") == f"Authorization: Bearer {MASK}"
    assert masker.mask("db password=hunter2 user=root") == f"db password={MASK} user=root"
    assert masker.mask('{"api_key": "k-123"}') == f'{{"api_key": "{MASK}"}}'
    assert masker.mask("--certificate-key " + "ab" * 32) == f"--certificate-key {MASK}"
    assert masker.mask("xoxb-1234567890-abcdef") == MASK


def test_plain_text_is_left_alone() -> None:
    text = "TASK [Generate the bootstrap token] ok: [master-1] changed=1"
    assert Masker(values=["s3cret-value"]).mask(text) == text


def test_secret_looking_environment_values_are_masked() -> None:
    masker = Masker.with_environment(
        values=[], environ={"KOBOT_SLACK__BOT_TOKEN": "xoxb-zzz-9999", "HOME": "/root", "MY_TOKEN": "1"}
    )
    assert masker.values == ("xoxb-zzz-9999",)


def test_nested_data_is_masked() -> None:
    masker = Masker(values=["s3cret-value"])
    data = {"res": {"msg": "got s3cret-value", "rc": 1, "lines": ["s3cret-value", 2]}}
    assert masker.mask_data(data) == {"res": {"msg": f"got {MASK}", "rc": 1, "lines": [MASK, 2]}}


def test_scrub_file_rewrites_text_and_removes_binary(tmp_path: Path) -> None:
    masker = Masker(values=["s3cret-value"])
    text_file = tmp_path / "stdout"
    text_file.write_text("ok s3cret-value\n", encoding="utf-8")
    binary = tmp_path / "blob"
    binary.write_bytes(b"\xff\xfe s3cret-value")
    clean = tmp_path / "rc"
    clean.write_text("0", encoding="utf-8")

    assert masker.scrub_file(path=text_file) and masker.scrub_file(path=binary)
    assert not masker.scrub_file(path=clean)
    assert text_file.read_text(encoding="utf-8") == f"ok {MASK}\n"
    assert not binary.exists()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("secret", "printed", "must_vanish"),
    [
        ("s3cret-value", _b64(b"s3cret-value"), _b64(b"s3cret-value")),
        ("s3cret-value", _b64(b"s3cret-value").rstrip("="), "czNjcmV0LXZhbHVl"),
        ("s3cret-value", base64.urlsafe_b64encode(b"\xfb\xffs3cret-value?>").decode(), "M2NyZXQtdmFsdWU"),
        ("s3cret-value", _b64(b"user:s3cret-value"), "M2NyZXQtdmFsdW"),
        ("s3cret-value", _b64(b"ab:s3cret-value;more"), "czNjcmV0LXZhbHVl"),
        ("s3cret-value", b"s3cret-value".hex(), b"s3cret-value".hex()),
        ("s3cret-value", b"s3cret-value".hex().upper(), b"s3cret-value".hex().upper()),
        ("s3cret value&more", quote("s3cret value&more", safe=""), "s3cret%20value%26more"),
        ("s3cret value&more", "p=s3cret+value%26more", "s3cret+value%26more"),
        ("s3cret/value&more", "s3cret%2fvalue%26more", "s3cret%2fvalue%26more"),
        ("s3cret value/more", "p=s3cret+value%2fmore", "s3cret+value%2fmore"),
    ],
)
def test_encoded_values_are_masked(secret: str, printed: str, must_vanish: str) -> None:
    assert must_vanish in printed
    masked = Masker(values=[secret]).mask(f"out {printed} end")
    assert MASK in masked and must_vanish not in masked, masked
    assert masked.startswith("out ") and masked.endswith(" end")


@pytest.mark.parametrize("width", [76, 64, 60])
@pytest.mark.parametrize("newline", ["\n", "\r\n", "\\n"], ids=["lf", "crlf", "json-escaped"])
@pytest.mark.parametrize("shift", [0, 1, 2], ids=["aligned", "one-byte-in", "two-bytes-in"])
def test_base64_wrapped_into_lines_is_masked_where_the_secret_spans_a_break(
    width: int, newline: str, shift: int
) -> None:
    """`base64 -w76` (and PEM-style 64) of a longer text: the secret's characters straddle a line."""
    secret = "s3cret-value-that-is-long"
    offset = (width - 10) * 3 // 4 + shift
    encoded = _b64(b"x" * offset + secret.encode() + b"y" * 80)
    lines = [encoded[i : i + width] for i in range(0, len(encoded), width)]
    assert not any(form in line for line in lines for form in encodings_of(secret)), "it straddles"
    printed = "    " + newline.join(f"  {line}" for line in lines)

    masked = Masker(values=[secret]).mask(f"out\n{printed}\nend")

    assert MASK in masked and masked.startswith("out") and masked.endswith("end")
    joined = re.sub(r"\s|\\[rn]", "", masked)
    assert not any(form in joined for form in encodings_of(secret)), masked


def test_wrapped_base64_without_a_secret_is_left_alone() -> None:
    text = "\n".join(_b64(bytes(range(200)))[i : i + 76] for i in range(0, 268, 76))
    assert Masker(values=["s3cret-value"]).mask(text) == text


def test_short_values_are_not_masked_in_encodings() -> None:
    assert Masker(values=["abc"]).mask("YWJj 616263") == "YWJj 616263"


def test_encoded_secret_printed_by_a_real_play_never_leaves_the_runner(tmp_path: Path) -> None:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "encoded.yml").write_text(ENCODING_PLAY, encoding="utf-8")
    events: list[JobEvent] = []
    run = make_run(
        tmp_path,
        playbook="encoded.yml",
        playbooks_dir=playbooks,
        inventory=local_inventory(tmp_path, "node-a"),
        secrets={"DB_ADMIN_PASSWORD": SECRET},
    )

    result = run_playbook(run, on_event=events.append, should_cancel=never)

    assert result.status is PlaybookStatus.SUCCESSFUL
    forms = {
        "base64": base64.b64encode(SECRET.encode()).decode(),
        "basic": base64.b64encode(b"admin:" + SECRET.encode()).decode(),
        "url": quote(SECRET),
        "urlsafe": base64.urlsafe_b64encode(b"x" + SECRET.encode()).decode().rstrip("="),
    }
    messages = [event.message or "" for event in events]
    for prefix in ("b64 ", "basic ", "url ", "b64url "):
        printed = [m for m in messages if m.startswith(prefix)]
        assert printed and all(MASK in m for m in printed), (prefix, printed)
    for event in events:
        dumped = event.model_dump_json()
        for name, form in forms.items():
            assert form not in dumped, name
    private_dir = tmp_path / "jobs" / "42" / "preflight-a1"
    files = [path for path in private_dir.rglob("*") if path.is_file()]
    assert any(path.parent.name == "job_events" for path in files)
    for path in files:
        content = path.read_bytes()
        assert SECRET.encode() not in content, path
        for name, form in forms.items():
            assert form.encode() not in content, (name, path)
