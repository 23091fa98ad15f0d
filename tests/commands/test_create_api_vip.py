"""`api_vip=` at create: an address, free (not a host), outside the pod and service ranges."""

from __future__ import annotations

import pytest

from commands.parser import parse
from commands.registry import typed_args
from kobot.cluster_spec import ClusterSpec
from kobot.errors import CommandError

HOSTS = "hosts=10.1.0.1,10.1.0.2,10.1.0.3"


@pytest.mark.parametrize("spelling", ["api_vip", "vip", "api-vip", "虚拟IP"])
def test_create_takes_a_vip_that_reaches_the_spec(spelling: str) -> None:
    parsed = parse(f"create cluster dev masters=3 workers=0 {HOSTS} {spelling}=10.1.0.100")
    args = typed_args(parsed).model_dump(mode="json")
    assert args["api_vip"] == "10.1.0.100"
    spec = ClusterSpec.model_validate(
        # break_glass unlocks the command and dry_run picks the job's steps: neither is the cluster's
        {**{k: v for k, v in args.items() if k not in ("break_glass", "dry_run")}, "name": "dev"}
    )
    assert spec.api_vip == "10.1.0.100"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("api.example", "is not an IP address"),
        ("10.1.0.2", "api_vip 10.1.0.2 is also a host"),
        ("10.244.3.9", "inside pod_cidr 10.244.0.0/16"),
        ("10.96.0.10", "inside service_cidr 10.96.0.0/12"),
        ("224.0.0.18", "multicast"),
    ],
)
def test_create_refuses_a_vip_that_cannot_work(value: str, message: str) -> None:
    with pytest.raises(CommandError) as refused:
        typed_args(parse(f"create cluster dev masters=3 workers=0 {HOSTS} vip={value}"))
    assert message in refused.value.user_message
