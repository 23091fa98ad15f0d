"""Rendering rules that hold without any server: sizes, splitting, cards, stages."""

from __future__ import annotations

from bot.chat.wecom import defaults
from bot.chat.wecom.render import fit_bytes, render_card, render_markdown, split_markdown, stage_of
from kobot.messages import Button, OutgoingMessage, Progress, Tone
from tests.chat import samples


def test_fit_bytes_cuts_on_a_character_boundary() -> None:
    text = "扩容" * 100
    cut = fit_bytes(text, limit=50)
    assert len(cut.encode()) <= 50
    assert cut.endswith("…")
    assert cut[:-1] == text[: len(cut) - 1]


def test_split_keeps_every_line_when_it_fits_in_the_part_budget() -> None:
    lines = [f"line {i} " + "x" * 100 for i in range(60)]
    parts = split_markdown("\n".join(lines), limit=1000, max_parts=10)
    assert all(len(p.encode()) <= 1000 for p in parts)
    assert "\n".join(parts).split("\n") == lines
    assert len(parts) == 7


def test_split_summarizes_beyond_the_part_limit() -> None:
    lines = [f"line {i:03d} " + "y" * 200 for i in range(200)]
    parts = split_markdown("\n".join(lines))
    assert len(parts) == defaults.MESSAGE_PARTS_MAX
    assert all(len(p.encode()) <= defaults.MARKDOWN_MAX_BYTES for p in parts)
    assert parts[0].startswith("line 000")
    shown = sum(p.count("\n") + 1 for p in parts) - 1
    assert parts[-1].endswith(f"… {200 - shown} more lines not shown")


def test_a_single_huge_line_is_cut_not_lost_in_an_error() -> None:
    parts = split_markdown("z" * 10_000)
    assert len(parts) == 1
    assert len(parts[0].encode()) <= defaults.MARKDOWN_MAX_BYTES


def test_markdown_carries_title_status_fields_and_numbered_buttons() -> None:
    text = render_markdown(samples.APPROVAL_REQUEST)
    assert text.startswith("**⚠️ Approval needed · delete cluster staging**")
    assert '<font color="warning">requested by Alice' in text
    assert "> **Plan:** destroy 3 masters, 5 workers" in text
    assert "`[1] Approve`  `[2] Reject`" in text


def test_card_has_one_button_per_key_and_cuts_long_titles() -> None:
    message = samples.APPROVAL_REQUEST.model_copy(update={"title": "T" * 80})
    card = render_card(message, task_id="kobot_1", keys=["a", "b"])
    assert card["card_type"] == "button_interaction"
    assert [b["key"] for b in card["button_list"]] == ["a", "b"]
    assert [b["style"] for b in card["button_list"]] == [1, 3]
    assert len(card["main_title"]["title"]) == defaults.CARD_TITLE_MAX_CHARS


def test_card_moves_fields_beyond_six_into_the_sub_title() -> None:
    from kobot.messages import Field

    fields = tuple(Field(label=f"f{i}", value=str(i)) for i in range(8))
    message = OutgoingMessage(
        title="t", fields=fields, buttons=(Button(label="x", action_id="a", value="v"),)
    )
    card = render_card(message, task_id="kobot_1", keys=["v"])
    assert len(card["horizontal_content_list"]) == defaults.CARD_FIELDS_MAX
    assert "f6: 6" in card["sub_title_text"]


def test_a_new_task_line_is_not_a_new_stage_but_a_new_step_is() -> None:
    def running(step: int, task: str) -> OutgoingMessage:
        return samples.PROGRESS_MIDDLE.model_copy(
            update={"progress": Progress(step=step, total=4, step_title="s", task=task)}
        )

    assert stage_of(running(2, "a")) == stage_of(running(2, "b"))
    assert stage_of(running(2, "a")) != stage_of(running(3, "a"))
    done = samples.PROGRESS_DONE
    assert stage_of(done) != stage_of(running(4, "a"))
    assert stage_of(done.model_copy(update={"tone": Tone.DANGER})) != stage_of(done)
