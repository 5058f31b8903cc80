#!/usr/bin/env python3
"""A rule-based stand-in for a teacher model (GPT-4 ...), served over an OpenAI-compatible API.

For the runnable domain walkthrough (docs/domain-judges.md) on a machine without a real teacher:
it answers ``judgeforge data synthesize`` / ``judgeforge data pair`` prompts with plausible,
rule-based customer-support replies and feedback for the example rubric
(examples/domain/rubric.yaml: acknowledge the problem, apologise, give a concrete fix,
offer further help; score = 1 + the number of those four things a reply does).

Like a real teacher it is sometimes wrong: the first time it sees a prompt, about one answer in
``--fault-rate`` comes back broken (a wrong score, no [RESULT] tag, no sections), which
``synthesize`` rejects and asks again -- so the walkthrough shows rejection and regeneration.

    python scripts/scripted_teacher.py --port-file /tmp/teacher.url   # prints and writes the base URL
    judgeforge data synthesize --teacher "$(cat /tmp/teacher.url)" --teacher-model scripted ...

It is a real HTTP server on 127.0.0.1 (tests/openai_stub.py), not a model: swap in a real
teacher with --teacher https://api.openai.com/v1 --teacher-model gpt-4o.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the four things the example rubric asks for, in the rubric's order
ELEMENTS = ("acknowledges the problem", "apologises", "gives a concrete fix", "offers further help")

ACK = ("I understand that {issue}.", "I see that {issue}.", "Thanks for explaining that {issue}.")
SORRY = ("I'm sorry for the trouble this caused.", "I apologise for the inconvenience.",
         "I am sorry you had to deal with this.")
FOLLOW = ("If anything else comes up, just reply to this message and I will help.",
          "If the problem comes back, reply here and I will look into it right away.",
          "Let me know if you need anything else; I am happy to help further.")
DECOYS = ("Thank you for contacting Brightdesk support.", "Our office is open on weekdays.",
          "We value every customer.", "Have a great day.", "Brightdesk has served customers since 2009.",
          "Your account number is on file.", "Our team reads every message.", "Best regards, the support team.")

# keyword -> a concrete fix (what a good agent would do)
FIXES = (
    (("charge", "charged", "invoice", "billing", "refund", "payment"),
     "Here is what I did: I refunded the extra charge, and it will appear on your statement within five days."),
    (("password", "log in", "login", "locked", "sign in"),
     "Here is what I did: I sent a password reset link to your email; it stays valid for one hour."),
    (("slow", "crash", "crashes", "freezes", "error", "bug"),
     "Here is what I did: I cleared the cache on your workspace and moved it to a faster server."),
    (("delivery", "shipment", "package", "arrived", "parcel"),
     "Here is what I did: I reshipped your order with express delivery at no cost."),
    (("cancel", "subscription", "plan", "upgrade", "downgrade"),
     "Here is what I did: I changed your plan as requested, effective today, and prorated the price."),
    (("export", "data", "report", "download"),
     "Here is what I did: I generated the export and attached a download link valid for seven days."),
)
DEFAULT_FIX = "Here is what I did: I applied the fix to your account and confirmed that it works."


def _h(*parts) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _section(text: str, name: str) -> str:
    m = re.search(r"###" + re.escape(name) + r":\n(.*?)(?:\n\n###|\Z)", text, re.DOTALL)
    return m.group(1).strip() if m else ""


def _issue(instruction: str) -> str:
    first = re.split(r"(?<=[.!?])\s", instruction.strip(), maxsplit=1)[0].rstrip(".!?")
    first = re.sub(r"^(hi|hello|hey)[,!]?\s*", "", first, flags=re.IGNORECASE)
    first = re.sub(r"\bI am\b|\bI'm\b", "you are", first)
    first = re.sub(r"\bI've\b|\bI have\b", "you have", first)
    first = re.sub(r"\bmy\b", "your", first, flags=re.IGNORECASE)
    first = re.sub(r"\bI\b", "you", first)
    first = re.sub(r"\bme\b", "you", first)
    first = re.sub(r"\byou was\b", "you were", first)
    return first[:1].lower() + first[1:]


def _fix(instruction: str) -> str:
    low = instruction.lower()
    for words, fix in FIXES:
        if any(w in low for w in words):
            return fix
    return DEFAULT_FIX


def write_reply(instruction: str, elements: set[int], variant: int) -> str:
    """A support reply doing exactly the listed elements (0-3), varied by ``variant``."""
    parts = [DECOYS[variant % len(DECOYS)]]
    if 0 in elements:
        parts.append(ACK[variant % len(ACK)].format(issue=_issue(instruction)))
    if 1 in elements:
        parts.append(SORRY[(variant // 3) % len(SORRY)])
    if 2 in elements:
        parts.append(_fix(instruction))
    else:
        parts.append(DECOYS[(variant + 3) % len(DECOYS)])
    if 3 in elements:
        parts.append(FOLLOW[(variant // 9) % len(FOLLOW)])
    parts.append(DECOYS[(variant + 5) % len(DECOYS)])
    return " ".join(parts)


def found(reply: str) -> list[bool]:
    """Which of the four elements a reply does (the same rule the feedback states)."""
    return [
        any(a.split("{")[0].strip() in reply for a in ACK),
        any(s in reply for s in SORRY),
        "Here is what I did:" in reply,
        any(f in reply for f in FOLLOW),
    ]


def feedback_for(reply: str) -> tuple[str, int]:
    have = found(reply)
    checks = " ".join(f"{name[0].upper() + name[1:]}: {'yes' if h else 'no'}." for name, h in zip(ELEMENTS, have))
    n = sum(have)
    return f"The reply is checked against the four things the policy asks for. {checks} " \
           f"It does {n} of the four, which matches Score {n + 1}.", n + 1


def elements_for(score: int, instruction: str, variant: int) -> set[int]:
    k = score - 1
    order = sorted(range(4), key=lambda i: _h(instruction, variant, i))
    return set(order[:k])


def compare(a: str, b: str) -> tuple[str, str]:
    """A comparative feedback for two replies and the better one ("A"/"B")."""
    fa, fb = found(a), found(b)
    better = "A" if sum(fa) > sum(fb) else "B"
    same = [ELEMENTS[i] for i in range(4) if fa[i] and fb[i]]
    only_a = [ELEMENTS[i] for i in range(4) if fa[i] and not fb[i]]
    only_b = [ELEMENTS[i] for i in range(4) if fb[i] and not fa[i]]

    def say(xs):
        return ", ".join(xs) if xs else "nothing"

    text = (f"Both replies: {say(same)}. Only Response A: {say(only_a)}. Only Response B: {say(only_b)}. "
            f"Response A does {sum(fa)} of the four things the policy asks for and Response B does {sum(fb)}, "
            f"so Response {better} handles the problem better.")
    return text, better


class Teacher:
    """The reply function for tests/openai_stub.ScriptedOpenAIServer."""

    def __init__(self, fault_rate: float = 0.15):
        self.fault_rate = fault_rate
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, kind: str, body: dict, call_no: int):
        if kind != "chat":
            return (400, {"error": {"message": "the scripted teacher only serves /v1/chat/completions"}})
        text = body["messages"][-1]["content"]
        base = text.split("\n\nAn earlier answer was rejected")[0]
        with self.lock:
            seen = self.seen.get(base, 0)
            self.seen[base] = seen + 1
        faulty = seen == 0 and (_h(base) % 1000) < self.fault_rate * 1000
        if "Write the reference answer for the instruction below" in text:
            instruction = _section(text, "Instruction")
            return write_reply(instruction, {0, 1, 2, 3}, _h(instruction) % 97)
        m = re.search(r"deserves a score of exactly (\d)", text)
        if m:
            score = int(m.group(1))
            instruction = _section(text, "Instruction")
            variant = _h(instruction, score, seen, body.get("seed")) % 997
            reply = write_reply(instruction, elements_for(score, instruction, variant), variant)
            feedback, got = feedback_for(reply)
            if faulty:
                kind_of_fault = _h(base, "fault") % 3
                if kind_of_fault == 0:
                    return f"###Response:\n{reply}\n###Feedback:\n{feedback} [RESULT] {got % 5 + 1}"
                if kind_of_fault == 1:
                    return f"###Response:\n{reply}\n###Feedback:\n{feedback}"
                return f"Sure! Here is a reply: {reply}"
            return f"###Response:\n{reply}\n###Feedback:\n{feedback} [RESULT] {got}"
        if "Graders who assessed each response" in text:
            fb_text, better = compare(_section(text, "Response A"), _section(text, "Response B"))
            if faulty:
                return f"{fb_text} [RESULT] {'B' if better == 'A' else 'A'}"
            return f"{fb_text} [RESULT] {better}"
        return "I can only help with judgeforge data synthesis prompts."


def write_heldout(instructions: str, rubric_file: str, out_dir: str, pairs_per_instruction: int = 5) -> None:
    """The walkthrough's held-out set, labelled by the same rule (a stand-in for human labels):
    ``heldout_absolute.jsonl`` and ``heldout_relative.jsonl`` in judgeforge's absolute/relative schemas."""
    import json

    from judgeforge.format.records import AbsoluteExample
    from judgeforge.format.rubric_file import load_rubric_file
    from judgeforge.io import write_jsonl
    from judgeforge.synth import plan_pairs, read_instructions

    rubric = load_rubric_file(rubric_file).rubric
    flat = rubric.to_dict()
    items, _ = read_instructions(instructions)
    absolute, examples = [], []
    for it in items:
        ref = write_reply(it.text, {0, 1, 2, 3}, _h(it.text, "ref") % 97)
        for score in range(1, 6):
            variant = _h(it.text, score, "heldout") % 997
            reply = write_reply(it.text, elements_for(score, it.text, variant), variant)
            feedback, got = feedback_for(reply)
            assert got == score
            rid = f"{it.key}-s{score}"
            absolute.append({"id": rid, "instruction": it.text, "response": reply, "reference_answer": ref,
                             **flat, "score": score, "feedback": feedback})
            examples.append(AbsoluteExample(it.text, reply, rubric, ref, score, feedback, rid))
    plans, _ = plan_pairs(examples, pairs_per_instruction, seed=0)
    relative = []
    for p in plans:
        relative.append({"id": p.id, "instruction": p.a.instruction, "response_a": p.a.response,
                         "response_b": p.b.response, "reference_answer": p.a.reference_answer,
                         "criteria": rubric.criteria, "preference": p.preference,
                         "score_a": p.a.score, "score_b": p.b.score,
                         "feedback": compare(p.a.response, p.b.response)[0]})
    out = Path(out_dir)
    write_jsonl(out / "heldout_absolute.jsonl", absolute)
    write_jsonl(out / "heldout_relative.jsonl", relative)
    print(json.dumps({"absolute": len(absolute), "relative": len(relative)}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port-file", default=None, help="write the base URL to this file once serving")
    p.add_argument("--fault-rate", type=float, default=0.15, help="share of first answers that are broken")
    p.add_argument("--write-heldout", nargs=3, metavar=("INSTRUCTIONS", "RUBRIC", "OUT_DIR"),
                   help="write the labelled held-out set instead of serving")
    args = p.parse_args(argv)
    if args.write_heldout:
        write_heldout(*args.write_heldout)
        return 0
    sys.path.insert(0, str(ROOT / "tests"))
    from http.server import ThreadingHTTPServer

    from openai_stub import ScriptedOpenAIServer

    # the stdlib's listen backlog of 5 resets connections when a client sends 8 requests at once
    ThreadingHTTPServer.request_queue_size = 64

    with ScriptedOpenAIServer(Teacher(args.fault_rate), model="scripted") as srv:
        print(srv.base_url, flush=True)
        if args.port_file:
            tmp = Path(args.port_file + ".tmp")
            tmp.write_text(srv.base_url + "\n")
            tmp.replace(args.port_file)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
