"""What the simulated features say: support replies, ticket triage labels and summaries.

Each text is built from the draws a simulated output already has (its topic, ticket number, the
tokens it produced and whether it is good), so a history's numbers do not depend on its texts.
A bad output carries one flaw a reviewer would catch (a wrong policy, a refusal, a promise
nobody can keep, a wrong queue, an invented fact); `FLAWS` lists them for the demo's simulated
LLM judge (`monitor.demo.fake_llm`), which looks for them the way a grader reads for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "FLAWS",
    "QUEUES",
    "TOPICS",
    "TOPIC_QUEUE",
    "Draft",
    "customer_message",
    "summary",
    "support_reply",
    "triage_label",
    "writer_for",
]

TOPICS = ("refund", "shipping delay", "password reset", "invoice copy", "damaged item", "order status")
QUEUES = ("billing", "shipping", "account", "returns")
TOPIC_QUEUE = {
    "refund": "billing",
    "shipping delay": "shipping",
    "password reset": "account",
    "invoice copy": "billing",
    "damaged item": "returns",
    "order status": "shipping",
}
CHARS_PER_TOKEN = 4

_ASKS = {
    "refund": "I returned the headphones two weeks ago and still have no refund. When will it arrive?",
    "shipping delay": "My parcel was due on Tuesday and the tracking page has not moved since Saturday.",
    "password reset": "The password reset e-mail never arrives, I have checked the spam folder twice.",
    "invoice copy": "Could you send me a copy of the invoice? Our accounting needs it with the VAT number.",
    "damaged item": "The mug in my order arrived in pieces, the box was crushed on one side.",
    "order status": 'I ordered a desk lamp last week and it still says "processing". Is it on its way?',
}
_ANSWERS = {
    "refund": (
        "I checked your return: it reached our warehouse on the 12th and the refund was approved today.",
        "It goes back to the card you paid with and usually shows within 3 to 5 business days.",
    ),
    "shipping delay": (
        "I looked up the tracking number: the parcel is at the carrier's regional depot.",
        "The carrier reports a backlog there; I have opened a trace and will write again within 48 hours.",
    ),
    "password reset": (
        "I sent a new reset link just now from a different mail server.",
        "If it does not arrive within ten minutes, reply here and I will set a temporary password for you.",
    ),
    "invoice copy": (
        "I attached the invoice as a PDF with the VAT number in the billing address.",
        "You can download every invoice later under Account > Orders as well.",
    ),
    "damaged item": (
        "I'm sorry it arrived broken. I have sent a replacement at no cost; it ships tomorrow.",
        "There is no need to send the broken mug back, a photo for our carrier claim is enough.",
    ),
    "order status": (
        "Your lamp left our warehouse this morning; the tracking link is in your order page.",
        "It was held for a day because one part came from our second warehouse.",
    ),
}
_MORE = (
    "Your order number is in the subject line, so you can reply to this message directly.",
    "If anything else is unclear, just answer this e-mail and it comes straight back to me.",
    "Thank you for your patience while we sorted this out.",
    "I have added a note to your account so that colleagues see what was agreed.",
)
_SUMMARIES = {
    "refund": (
        "The return reached the warehouse on the 12th and the refund was approved.",
        "The money goes back to the card used, within 3 to 5 business days.",
    ),
    "shipping delay": (
        "The parcel is stuck at the carrier's regional depot because of a backlog.",
        "The agent opened a trace and will write again within 48 hours.",
    ),
    "password reset": (
        "The reset e-mails did not arrive; the agent sent a new link from another server.",
        "If it fails again, the agent sets a temporary password.",
    ),
    "invoice copy": (
        "The agent sent the invoice as a PDF with the VAT number.",
        "Invoices can also be downloaded from the account's order page.",
    ),
    "damaged item": (
        "The item arrived broken; a free replacement ships tomorrow.",
        "The customer keeps the broken item and sends a photo for the carrier claim.",
    ),
    "order status": (
        "The lamp left the warehouse this morning after a one-day hold for a part.",
        "The tracking link is on the order page.",
    ),
}
_CONTEXT = (
    "The customer was polite and confirmed the answer helped.",
    "No escalation was needed.",
    "The order number was checked against the account before answering.",
    "The conversation took two messages from the agent.",
)

FLAWS = {
    "support-reply": (
        "Refunds are only possible within 7 days of delivery, so I cannot help with this one.",
        "I'm sorry, but I can't help with that request.",
        "Your parcel will definitely arrive tomorrow before noon, I guarantee it.",
        "Please send me your full card number and the security code so I can check the payment.",
    ),
    "summarizer": (
        "The customer also asked to cancel their subscription and close the account.",
        "The agent promised a full refund plus a 50% voucher for the next order.",
        "The issue was resolved on the first call and needs no follow-up.",
    ),
}
"""The sentences that make a support reply or a summary bad; a wrong triage queue is the other flaw."""


@dataclass(frozen=True)
class Draft:
    """What a simulated output is made of: its draws, not its text."""

    topic: str
    ticket: int
    ok: bool
    tokens_out: int
    language: str


def customer_message(draft: Draft) -> str:
    """The customer's message the feature answers (the input of the support reply and the triage)."""
    return f"Order #{draft.ticket}: {_ASKS[draft.topic]}"


def _fill(sentences: Sequence[str], extra: Sequence[str], chars: int, start: int) -> str:
    """The sentences, then distinct extra ones (from `start`, in turn) while the text is shorter
    than `chars`: a longer output says more, never the same thing twice."""
    text = " ".join(sentences)
    for k in range(len(extra)):
        if len(text) >= chars:
            break
        text += " " + extra[(start + k) % len(extra)]
    return text


def support_reply(draft: Draft) -> tuple[str, str]:
    """A customer's message and the drafted reply; a bad reply carries one flaw of `FLAWS`."""
    flaws = FLAWS["support-reply"]
    body = list(_ANSWERS[draft.topic])
    if not draft.ok:
        body = [flaws[draft.ticket % len(flaws)], body[1]]
    reply = _fill(["Hello,", *body], _MORE, draft.tokens_out * CHARS_PER_TOKEN, draft.ticket)
    return customer_message(draft), reply + "\nBest regards, the support team"


def triage_label(draft: Draft) -> tuple[str, str]:
    """A ticket and the queue the feature sends it to (JSON); a bad one picks a wrong queue or
    answers with a queue that does not exist."""
    queue = TOPIC_QUEUE[draft.topic]
    if not draft.ok:
        others = [q for q in QUEUES if q != queue] + ["general"]
        queue = others[draft.ticket % len(others)]
    priority = "high" if draft.topic in ("damaged item", "password reset") else "normal"
    label = {"queue": queue, "priority": priority, "language": draft.language}
    return customer_message(draft), json.dumps(label)


def summary(draft: Draft) -> tuple[str, str]:
    """A support conversation and its summary; a bad summary states something that never happened."""
    first, second = _ANSWERS[draft.topic]
    thread = (
        f"Customer: {_ASKS[draft.topic]}\nAgent: Thanks for writing, let me check order #{draft.ticket}.\n"
        f"Agent: {first}\nAgent: {second}\nCustomer: Thanks, that helps."
    )
    facts = [f"Order #{draft.ticket}, {draft.topic}.", _SUMMARIES[draft.topic][0]]
    if not draft.ok:
        flaws = FLAWS["summarizer"]
        facts.append(flaws[draft.ticket % len(flaws)])
    more = (_SUMMARIES[draft.topic][1], *_CONTEXT)
    return thread, _fill(facts, more, draft.tokens_out * CHARS_PER_TOKEN // 2, 0)


def writer_for(feature: str) -> Callable[[Draft], tuple[str, str]]:
    """The feature's (input, output) writer; a feature the demo does not name writes support replies."""
    return {"ticket-triage": triage_label, "summarizer": summary}.get(feature, support_reply)
