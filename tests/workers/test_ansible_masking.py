"""Masking of secrets before anything leaves a runner."""

from __future__ import annotations

from pathlib import Path

from workers.masking import MASK, Masker


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
