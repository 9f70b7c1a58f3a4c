"""The sweep: SFT a reference on the synthetic reviews, sample and label preferences as the
DPO paper does, train each loss type / β from the reference, and record the true reward
and the KL to the reference on held-out prompts every `eval_every` steps.

    from dpo.frontier import FrontierConfig, run_frontier
    rows = run_frontier(FrontierConfig.quick(), out_dir="runs/frontier", backend="numpy")

Every row of the result (and of DIR/frontier.jsonl) has a `kind`:

    reference       π_ref on the held-out prompts (step 0 of every run)
    policy          a run's policy after `step` updates: loss_type, beta, reward and kl with
                    standard errors (kl: the exact per-position sum; kl_mc: the log-ratio estimate)
    bandit_optimal  π* of the bandit over the task's own candidates, for one β (closed form)
    bandit_dpo      the tabular policy DPO reached on that bandit, for one β
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile

import numpy as np

from backends import get_backend, resolve_backend

from ..config import DPOConfig
from ..data import load_preferences
from ..metrics import MetricsLog
from ..model import GPTConfig, TinyGPT
from ..tokenizer import InstructionTokenizer
from ..training import build_models, train_dpo, warmup_pretrain
from .bandit import kl_rows, make_bandit, optimal_policy, policy_point, theoretical_frontier, train_bandit
from .kl import completion_log_probs, mean_and_stderr, sequence_kl
from .plot import run_label
from .sampling import sample_completions
from .task import Demonstration, make_corpus, split_prompts, true_reward

DEFAULT_RUNS = (("sigmoid", 0.1), ("sigmoid", 0.5), ("sigmoid", 1.0), ("sigmoid", 5.0), ("sigmoid", 20.0),
                ("ipo", 5.0), ("simpo", 2.0), ("sft", 0.1))
QUICK_RUNS = (("sigmoid", 0.1), ("sigmoid", 5.0), ("ipo", 5.0), ("simpo", 2.0), ("sft", 0.1))


@dataclasses.dataclass
class FrontierConfig:
    """Sizes of the experiment; the defaults are the full sweep, `quick()` a one-minute one.

    Reference: an SFT of `sft_steps` steps (batches of `sft_batch_size`, lr `sft_lr`) on
    `corpus_size` reviews. Preferences: `samples_per_prompt` completions from π_ref for each
    of `train_prompts` prompts at temperature 1, every pair of unequal reward labelled by it.
    Runs: (loss_type, beta) pairs, each `steps` updates at `lr` from π_ref; `loss_type` "sft"
    is preferred-FT (next-token training on the chosen completions). Evaluation every
    `eval_every` steps: `eval_samples` completions for each of `eval_prompts` held-out prompts
    (prompts no run trains on), at most `max_new_tokens` tokens. Bandit: the
    `bandit_candidates` completions sampled for each of `bandit_prompts` held-out prompts,
    trained with DPO at each of `bandit_betas` for `bandit_steps` steps.
    """

    model: GPTConfig = dataclasses.field(default_factory=lambda: GPTConfig(hidden=64, heads=4, depth=2, max_len=64))
    corpus_size: int = 4000
    sft_steps: int = 300
    sft_lr: float = 3e-3
    sft_batch_size: int = 32
    train_prompts: int = 320
    samples_per_prompt: int = 6
    runs: tuple = DEFAULT_RUNS
    steps: int = 150
    eval_every: int = 25
    batch_size: int = 32
    lr: float = 1e-4
    eval_prompts: int = 48
    eval_samples: int = 4
    max_new_tokens: int = 40
    bandit_prompts: int = 16
    bandit_candidates: int = 8
    bandit_betas: tuple = (0.05, 0.1, 0.5, 1.0, 5.0)
    bandit_steps: int = 600
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = GPTConfig(**self.model)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", "float"):
                kind = int if f.type == "int" else (int, float)
                ok = isinstance(value, kind) and not isinstance(value, bool) and np.isfinite(value)
                if not ok or value < 0 or (value == 0 and f.name != "seed"):
                    raise ValueError(f"FrontierConfig.{f.name} must be a positive {f.type}, got {value!r}")
        if self.samples_per_prompt < 2 or self.bandit_candidates < 2:
            raise ValueError("FrontierConfig: samples_per_prompt and bandit_candidates must be at least 2")
        self.runs = tuple((str(t), float(b)) for t, b in self.runs)
        if not self.runs:
            raise ValueError("FrontierConfig.runs is empty; give at least one (loss_type, beta)")
        for loss_type, beta in self.runs:
            DPOConfig(model=self.model, beta=beta, loss_type=loss_type)  # names the bad loss type or β
        self.bandit_betas = tuple(float(b) for b in self.bandit_betas)
        if not all(np.isfinite(b) and b > 0 for b in self.bandit_betas):
            raise ValueError(f"FrontierConfig.bandit_betas must be positive numbers, got {self.bandit_betas!r}")

    @classmethod
    def quick(cls, **changes) -> FrontierConfig:
        """The `--quick` sweep: the same experiment, smaller, in about a minute on two cores."""
        values = dict(corpus_size=1500, sft_steps=150, train_prompts=128, samples_per_prompt=4, runs=QUICK_RUNS,
                      steps=40, eval_every=20, batch_size=16, eval_prompts=24, eval_samples=4, bandit_prompts=8)
        values.update(changes)
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def evaluate_policy(policy, reference, prompt_ids, prompts, config: FrontierConfig, tokenizer) -> dict:
    """Sample `eval_samples` completions per prompt from `policy` (the same seed at every
    evaluation, so successive points differ by the policy, not by the draw) and score them:
    mean true reward and both KL estimates, with standard errors."""
    rows = [ids for ids in prompt_ids for _ in range(config.eval_samples)]
    texts = [p for p in prompts for _ in range(config.eval_samples)]
    completions = sample_completions(policy, rows, config.max_new_tokens, tokenizer.EOC, tokenizer.PAD,
                                     seed=config.seed + 1)
    rewards = [true_reward(p, tokenizer.decode(c)) for p, c in zip(texts, completions)]
    kl = sequence_kl(policy, reference, rows, completions, tokenizer.PAD)
    out = {}
    for name, values in (("reward", rewards), ("kl", kl.exact), ("kl_mc", kl.log_ratio)):
        out[name], out[f"{name}_se"] = mean_and_stderr(values)
    out["length"] = float(np.mean([len(c) for c in completions]))
    out["sample"] = f"{texts[0]} | {tokenizer.decode(completions[0])}"
    return out


def _clean(completion, tokenizer) -> str | None:
    """The completion's text when it round-trips through the tokenizer (ends with EOC, no other
    special token, valid UTF-8, not empty), else None: only such samples become preference rows."""
    text = tokenizer.decode(completion)
    return text if text and tokenizer.encode_completion(text) == list(completion) else None


def preference_rows(prompt: str, completions) -> tuple[list[dict], int]:
    """Every pair of `completions` labelled by the true reward: (rows with prompt, chosen (the
    higher reward), rejected and both rewards; the number of tied pairs, which are dropped)."""
    rows, ties = [], 0
    for a in range(len(completions)):
        for b in range(a + 1, len(completions)):
            ra, rb = true_reward(prompt, completions[a]), true_reward(prompt, completions[b])
            if ra == rb:
                ties += 1
                continue
            (chosen, rc), (rejected, rr) = sorted(((completions[a], ra), (completions[b], rb)), key=lambda t: -t[1])
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "chosen_reward": rc,
                         "rejected_reward": rr})
    return rows, ties


def make_preference_file(reference, prompts, config: FrontierConfig, path, tokenizer) -> dict:
    """Sample `samples_per_prompt` completions per prompt from `reference` at temperature 1,
    label every pair by the true reward (higher = chosen; ties and unusable samples dropped)
    and write them as JSONL rows `load_preferences` reads. Returns counts."""
    k = config.samples_per_prompt
    completions = sample_completions(reference, [tokenizer.encode_prompt(p) for p in prompts for _ in range(k)],
                                     config.max_new_tokens, tokenizer.EOC, tokenizer.PAD, seed=config.seed + 2)
    rows, ties, unusable = [], 0, 0
    for i, prompt in enumerate(prompts):
        texts = [_clean(c, tokenizer) for c in completions[i * k:(i + 1) * k]]
        unusable += sum(t is None for t in texts)
        labelled, tied = preference_rows(prompt, [t for t in texts if t is not None])
        rows += labelled
        ties += tied
    if not rows:
        raise RuntimeError("make_preference_file: every sampled pair tied or was unusable; "
                           "raise samples_per_prompt or train_prompts")
    with open(path, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    return {"pairs": len(rows), "ties": ties, "unusable": unusable}


def task_bandit(reference, prompts, config: FrontierConfig, tokenizer):
    """The bandit over the task's own candidates: for each prompt, the distinct usable completions
    among `bandit_candidates` samples from π_ref, π_ref renormalised over them (from exact
    sequence log-probs) and their true rewards. Prompts with fewer than two are left out."""
    K = config.bandit_candidates
    samples = sample_completions(reference, [tokenizer.encode_prompt(p) for p in prompts for _ in range(K)],
                                 config.max_new_tokens, tokenizer.EOC, tokenizer.PAD, seed=config.seed + 3)
    logps, rewards, valid = [], [], []
    for i, prompt in enumerate(prompts):
        texts = sorted({t for t in (_clean(c, tokenizer) for c in samples[i * K:(i + 1) * K]) if t is not None})
        if len(texts) < 2:
            continue
        logp = completion_log_probs(reference, [tokenizer.encode_prompt(prompt)] * len(texts),
                                    [tokenizer.encode_completion(t) for t in texts], tokenizer.PAD)
        pad = K - len(texts)
        logps.append(np.concatenate([logp - logp.max(), np.full(pad, -np.inf)]))
        rewards.append(np.concatenate([[true_reward(prompt, t) for t in texts], np.zeros(pad)]))
        valid.append(np.arange(K) < len(texts))
    if not logps:
        raise RuntimeError("task_bandit: no prompt had two distinct usable candidates")
    return make_bandit(np.exp(np.array(logps)), np.array(rewards), np.array(valid))


def run_frontier(config: FrontierConfig | None = None, out_dir=None, backend="numpy", log=print) -> list:
    """The whole experiment (see the module docstring); returns the rows, and with `out_dir`
    writes out_dir/preferences.jsonl, out_dir/frontier.jsonl and out_dir/config.json."""
    config = config or FrontierConfig()
    be = resolve_backend(backend)
    tokenizer = InstructionTokenizer()
    log = log or (lambda *_: None)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(config.to_dict(), f, indent=1)
    results = MetricsLog(os.path.join(out_dir, "frontier.jsonl") if out_dir else None)

    # π_ref: SFT on the corpus
    reference = TinyGPT(config.model, seed=config.seed, backend=be)
    corpus = [Demonstration(p, c, f"review {i}") for i, (p, c) in enumerate(make_corpus(config.corpus_size,
                                                                                         config.seed))]
    losses = warmup_pretrain(reference, corpus, tokenizer, steps=config.sft_steps, lr=config.sft_lr,
                             batch_size=config.sft_batch_size, seed=config.seed, max_len=config.model.max_len)
    log(f"reference: SFT on {len(corpus)} reviews, {len(losses)} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    weights = reference.export_weights()

    # preference data, labelled by the true reward
    n_bandit = config.bandit_prompts
    train_prompts, held_out = split_prompts(config.train_prompts, config.eval_prompts + n_bandit, config.seed)
    eval_prompts, bandit_prompts = held_out[:config.eval_prompts], held_out[config.eval_prompts:]
    with tempfile.TemporaryDirectory() as scratch:  # the pairs go through a file, as a user's would
        pref_path = os.path.join(out_dir or scratch, "preferences.jsonl")
        counts = make_preference_file(reference, train_prompts, config, pref_path, tokenizer)
        pairs = load_preferences(pref_path, max_len=config.model.max_len)
    log(f"preferences: {counts['pairs']} pairs from {len(train_prompts)} prompts x {config.samples_per_prompt} "
        f"samples ({counts['ties']} ties and {counts['unusable']} unusable samples dropped)")

    eval_ids = [tokenizer.encode_prompt(p) for p in eval_prompts]
    start = evaluate_policy(reference, reference, eval_ids, eval_prompts, config, tokenizer)
    results.write({"kind": "reference", "loss_type": "reference", "beta": None, "step": 0, **start})
    log(f"reference: reward {start['reward']:.3f} ± {start['reward_se']:.3f}")

    for loss_type, beta in config.runs:
        dpo_config = DPOConfig(model=config.model, beta=beta, loss_type=loss_type, lr=config.lr,
                               batch_size=config.batch_size, max_steps=config.steps, log_every=config.eval_every,
                               warmup_steps=0, sft_steps=0, seed=config.seed)
        policy, frozen = build_models(dpo_config, backend=be, weights=weights)
        label, name = {"kind": "policy", "loss_type": loss_type, "beta": beta}, run_label(loss_type, beta)
        results.write({**label, "step": 0, **start})

        def on_log(row, label=label, policy=policy, frozen=frozen, name=name):
            if "loss" not in row:
                return
            point = evaluate_policy(policy, frozen, eval_ids, eval_prompts, config, tokenizer)
            results.write({**label, "step": row["step"], "train_loss": row["loss"], **point})
            log(f"  {name} step {row['step']:4d}: reward "
                f"{point['reward']:.3f} ± {point['reward_se']:.3f}  KL {point['kl']:.3f} ± {point['kl_se']:.3f}")

        train_dpo(policy, frozen, pairs, dpo_config, tokenizer, on_log=on_log)

    bandit = task_bandit(reference, bandit_prompts, config, tokenizer)
    for beta, reward, kl in theoretical_frontier(bandit, np.geomspace(0.02, 20.0, 49)):
        results.write({"kind": "bandit_optimal", "loss_type": "optimal", "beta": beta, "reward": reward, "kl": kl})
    exact = get_backend(be.name, device=be.device, dtype="float64")  # the check is to rounding, so in float64
    worst = 0.0
    for beta in config.bandit_betas:
        probs = train_bandit(bandit, beta, steps=config.bandit_steps, backend=exact)
        reward, kl = policy_point(bandit, probs)
        gap = float(kl_rows(probs, optimal_policy(bandit, beta), bandit.valid).max())
        worst = max(worst, gap)
        results.write({"kind": "bandit_dpo", "loss_type": "sigmoid", "beta": beta, "reward": reward, "kl": kl,
                       "kl_to_optimal": gap})
    log(f"bandit: {bandit.valid.shape[0]} prompts, up to {bandit.valid.shape[1]} candidates each; DPO at "
        f"{len(config.bandit_betas)} betas, max KL(pi_theta || pi*) = {worst:.2e}")
    return results.rows
