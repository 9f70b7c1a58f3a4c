"""A controlled experiment: DPO's reward–KL frontier against a known reward (the DPO paper's
Figure 2 at toy scale). See docs/frontier.md.

    task      synthetic reviews, the lexicon, the true reward r(x, y)
    sampling  batched ancestral sampling from a model
    kl        KL(π_θ ‖ π_ref) along samples: exact per-position sum and Monte-Carlo log-ratio
    bandit    finite candidates per prompt: π* in closed form, DPO on exact preferences
    sweep     FrontierConfig and run_frontier: SFT, preference data, runs, evaluations
    plot      frontier.png
"""

from .bandit import Bandit, make_bandit, optimal_policy, policy_point, theoretical_frontier, train_bandit
from .kl import SampleKL, completion_log_probs, mean_and_stderr, sequence_kl
from .plot import plot_frontier
from .sampling import sample_completions
from .sweep import FrontierConfig, evaluate_policy, make_preference_file, run_frontier
from .task import make_corpus, sentiment, split_prompts, true_reward

__all__ = ["Bandit", "make_bandit", "optimal_policy", "policy_point", "theoretical_frontier", "train_bandit",
           "SampleKL", "completion_log_probs", "mean_and_stderr", "sequence_kl", "plot_frontier",
           "sample_completions", "FrontierConfig", "evaluate_policy", "make_preference_file", "run_frontier",
           "make_corpus", "sentiment", "split_prompts", "true_reward"]
