"""Prompts of the VLM perceiver and planner (our own wording of the paper's perception and plan prompts).

Templates use ``str.format`` fields; literal braces in the JSON examples are doubled.
"""

from __future__ import annotations

PERCEPTION_SYSTEM = """\
You are an image quality assessment expert who inspects photographs before they are restored and \
upscaled. Besides your own eyes you get the scores of no-reference quality models: CLIPIQA+, \
TOPIQ_NR and MUSIQ (higher means better quality), NIQE and PIQE (lower means better quality). \
Treat the scores as hints; what you see in the image decides."""

PERCEPTION_PROMPT = """\
Work in two steps.
1. Describe the image in one or two sentences: what it shows and its style (photo, scan, \
illustration, aerial view, ...). Say nothing about its quality in this description.
2. Rate how strongly each of these degradations is present: {kinds}.
Use exactly one severity per degradation from this scale, weakest first: {severities}. \
"very low" means absent. Only rate what is visible; do not guess from the scores alone.

Answer with a single JSON object and nothing else, in this form:
{{"degradations": [{{"kind": "noise", "severity": "low", "confidence": 0.8, "evidence": "what you saw"}}, ...],
 "image_description": "..."}}
"kind" must be one of the degradations listed above, "confidence" a number from 0 to 1.

Quality model scores for this image:
{iqa_result}"""

PLAN_SYSTEM = """\
You are an expert in image restoration who decides in which order restoration tools are applied. \
Some orders work better than others: for example, removing rain, noise or compression artifacts \
before super-resolution keeps the upscaler from amplifying them."""

PLAN_PROMPT = """\
An image has to be restored by applying a list of tasks, one after the other. Choose the order.
Image: {image_description}
Degradations found: {degradations}
Tasks to order: {tasks}

What past runs taught about pairs of tasks (failure rates of each order):
{experience}
{failure_note}
Your plan must be a permutation of the task list above: every task exactly as many times as it \
appears there, no other task, names spelled exactly as given.
Answer with a single JSON object and nothing else:
{{"thought": "one or two sentences on why", "plan": ["first task", "second task", ...]}}"""

REPLAN_NOTE = """\
Earlier attempts on this image that began with {failed} gave results below the quality threshold, \
so the plan must not begin with {which}.
"""
