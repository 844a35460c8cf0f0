"""The glossary: one entry for every KPI, symbol and column the app shows.

    lookup("collusion index") / lookup("Δ") / lookup("collusion_index")   -> Entry | None
    search("entropy")                                                     -> list[Entry]
    entries_for_panel("scene")                                            -> tuple[Entry, ...]
    run_notes("pricing", "qmix")                                          -> tuple[str, ...]

Panel ids are the dashboard's widget ids: status, scene, why, returns, losses (and metrics for
metrics.csv columns). Symbols follow the study guide: π is the policy, a store's profit is its
reward r_i = p_i·D_i (r̄ the mean, r_N and r_M the Nash and collusive profits).
"""

from __future__ import annotations

import msgspec


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # the name in metrics.csv / the code (collusion_index), or the symbol's name
    term: str  # what a person calls it
    symbol: str  # the guide's symbol, "" when it has none
    meaning: str  # one paragraph: what it is, its range and unit, how to read it
    panels: tuple[str, ...]  # where it shows: status, scene, why, returns, losses, metrics
    labels: tuple[str, ...] = ()  # other spellings on screen (for lookup)

    def names(self) -> tuple[str, ...]:
        return (self.key, self.term, *((self.symbol,) if self.symbol else ()), *self.labels)


def _e(key: str, term: str, symbol: str, panels: str, meaning: str, *labels: str) -> Entry:
    return Entry(key=key, term=term, symbol=symbol, meaning=" ".join(meaning.split()),
                 panels=tuple(panels.split()), labels=labels)


ENTRIES: tuple[Entry, ...] = (
    # ------------------------------------------------------------------ pricing KPIs
    _e("collusion_index", "collusion index", "Δ", "scene status metrics", """
       Δ = (r̄ − r_N)/(r_M − r_N): the stores' mean profit per day placed between the Nash profit
       r_N (Δ = 0) and the joint-profit (collusive) profit r_M (Δ = 1) (Calvano et al. 2020).
       Unitless, and NOT bounded to [0, 1]: below 0 the stores earn less than at Nash (e.g. −2.5
       early in training, when prices are random or undercut below Nash), above 1 they earn more
       than full collusion would give on average (possible for a moment when one store's
       deviation pays off). Undefined (—) when Nash and collusion coincide (pricing-guide).""",
       "collusion index Δ", "Δ"),
    _e("profit_vs_nash", "profit vs Nash", "", "scene status metrics", """
       100 × (r̄ − r_N)/r_N: the stores' mean profit per day as a signed distance from the Nash
       profit, in %. The target is a band, |profit vs Nash| ≤ 2 %: above it the stores collude
       (the collusion index says how far), below it they undercut.""", "profit vs nash"),
    _e("price_index", "price index", "", "scene status metrics", """
       (p̄ − p_N)/(p_M − p_N): the mean price placed between the Nash price (0) and the collusive
       price (1). Unitless; outside [0, 1] below Nash or above collusion. Read it beside the
       collusion index: prices can sit near Nash on average while profits do not."""),
    _e("exploitability", "exploitability", "", "scene status metrics", """
       What one store would gain by its best unilateral deviation, given the others' prices: money
       per store per day (mean over stores, days and copies); 0 exactly at a Nash equilibrium.
       One definition and one unit everywhere: the app shows money; as a share, divide by the
       Nash profit (the README's % column is that share). Training rows include exploration
       noise, which keeps it above 0."""),
    _e("mean_price", "mean price", "p̄", "scene status metrics", """
       The stores' mean price over the episode (money per unit), against the Nash price (the
       oracle's value). Its per-store values are p_i on the pricing panel.""", "p", "p_i"),
    _e("mean_profit", "mean profit", "r̄", "scene status metrics", """
       The stores' mean profit per day, r_i = (p_i − c)·D_i, in money (the headline KPI for
       pricing). Learners see it × reward_scale. The pricing panel's column r_i is each store's
       profit r_i; r_N and r_M are the Nash and collusive profits.""", "profit", "r_N", "r_M"),
    _e("reward", "reward", "r_i", "why scene", """
       Agent i's reward for one step: in pricing its profit p_i·D_i (the guide's r_i), in
       warehouses p·sold − c·order − h·leftover − b·lost, in fulfillment minus the team's cost ÷ N.
       The why panel shows it × reward_scale (the batch mean); the scene panels in money.""",
       "r", "r_team"),
    _e("demand", "demand", "D_i", "scene", """
       Units store i sells today: D_i = a − b·p_i + g·Σ_{j≠i} p_j (clipped at 0), or the logit
       market share. Column D on the pricing panel.""", "D"),
    # ------------------------------------------------------------------ warehouse KPIs
    _e("fill_rate", "fill rate", "", "scene status metrics", """
       Units sold ÷ units demanded, per step, averaged over the episode's steps (a mean of ratios;
       1 when nothing was demanded). Range 0..1, shown as %. High fill with a low % of optimal
       means overstocking."""),
    _e("stockout_rate", "stockout rate", "", "scene status metrics", """
       Share of warehouses (over copies and steps) that lost sales in a step. Range 0..1, shown as
       %. The optimal policy runs some stockouts on purpose: the critical fractile is 0.9."""),
    _e("pct_of_optimal", "% of optimal", "", "scene status metrics", """
       100 × team reward per step ÷ the exact optimum (average-reward DP; the shared truck's upper
       bound). 100 is optimal; NaN when the optimum is ≤ 0 (warehouse-guide, where the best is to
       order nothing). With a lead time: against what the optimal policy scores on the same
       episodes (same demand draws), since an episode starts with an empty pipeline.""",
       "pct of optimal"),
    _e("pct_of_long_run", "% of long-run optimum", "", "scene status metrics", """
       With a lead time: 100 × team reward per step ÷ the long-run optimum. Even the optimal
       policy stays below 100 inside an episode (96.9 % at lead 1 over 48 periods in
       REFERENCE §8's model): its pipeline starts empty.""", "pct of long run"),
    _e("team_reward_per_step", "team reward per step", "", "scene metrics", """
       The warehouses' summed reward per period, mean over copies, in money
       (r_i = p·sold − c·order − h·leftover − b·lost)."""),
    _e("mean_order", "mean order", "", "scene metrics", """
       Mean order per warehouse per period after the storage cap and the truck, in units."""),
    _e("order_up_to", "optimal order-up-to level", "", "scene", """
       The season's optimal stock level from the exact DP (┃ on the warehouse bars): order up to
       it. 'target' on the panel.""", "target"),
    # ------------------------------------------------------------------ fulfillment KPIs
    _e("optimal_choice_rate", "optimal-choice rate", "", "scene status metrics", """
       Share of orders where exactly the oracle's store accepted (only the cheapest able store;
       nobody when no store should ship). An order no store can ship counts as right: every
       choice costs the same miss. Range 0..1, shown as %.""", "optimal choice rate",
       "optimal"),
    _e("regret", "regret", "", "scene status metrics", """
       Mean team cost per order minus the oracle's (cheapest able store) cost, in cost units
       (km-equivalents). 0 is optimal; penalties for extra accepters and misses count."""),
    _e("conflict_rate", "conflict rate", "", "scene status metrics", """
       Share of orders that more than one store accepted (each extra accepter costs the
       redundant penalty). Range 0..1, shown as %.""", "conflicts"),
    _e("miss_rate", "miss rate", "", "scene status metrics", """
       Share of orders that no able store shipped (the team pays the miss penalty, 20). Range
       0..1, shown as %.""", "misses"),
    _e("mean_cost", "mean cost", "", "scene status metrics", """
       Mean team cost per order, penalties included; the oracle's is 3.737 on the bundled
       layout.""", "team cost"),
    # ------------------------------------------------------------------ returns and training
    _e("team_return", "team return", "G", "status returns metrics", """
       An episode's rewards summed over its steps and over agents, mean over copies, in money
       (not scaled). The red line is the oracle's. In pricing the team's return is not what the
       stores maximise: Nash earns less than collusion."""),
    _e("return_i", "agent return", "", "returns metrics", """
       One agent's episode return (return_1, return_2, …), money, mean over copies.""",
       "return_1", "return_2", "return_3"),
    _e("env_steps", "env steps", "", "status metrics returns losses", """
       Environment steps over all parallel copies: one batched step of B copies is B env steps.
       The budget (--steps) counts these."""),
    _e("episodes", "episodes done", "", "status metrics", """
       Training episodes finished (every copy finishes one at once)."""),
    _e("updates", "updates", "", "status metrics", """
       Learning steps taken (each may hold several gradient steps)."""),
    _e("gradient_steps", "gradient steps", "", "metrics", """
       MADDPG's optimiser steps so far (updates × updates_per_step)."""),
    # ------------------------------------------------------------------ symbols
    _e("gamma", "discount", "γ", "why", """
       γ ∈ [0, 1): how much tomorrow's reward counts today. Defaults differ per scenario on
       purpose: pricing is a repeated static game (today's price does not move tomorrow's
       demand), so MADDPG uses γ = 0 and QMIX 0.5 — nothing to bootstrap; fulfillment draws
       orders afresh each step (γ 0 or 0.5); warehouses carry stock over, so they look ahead
       (0.9–0.99). A lower γ also keeps values r/(1−γ) small, which QMIX needs to stay stable.""",
       "γ"),
    _e("reward_scale", "reward scale", "", "why", """
       Learners see reward × reward_scale (pricing 0.001, warehouse 0.02, fulfillment 0.1) so
       network outputs stay near 1; reports and KPIs stay in money. Q, V, y and losses on the
       why and losses panels are in these scaled units.""", "reward_scale"),
    _e("V", "centralised value", "V(s)", "why metrics", """
       MAPPO's V^cen(s): the expected discounted return from state s, in scaled reward units
       (reward × reward_scale), summed over about 1/(1−γ) steps — so it is far larger than one
       step's reward and than an episode's mean (V ≈ 200 with returns of 50 per episode is a
       long horizon, not a bug). With team_reward it values the agents' mean reward.""",
       "V^cen(s)", "V_mean", "V(s)"),
    _e("A_hat", "advantage", "Â", "why", """
       Â = how much better the action did than V(s) expected (GAE over the rollout). The why
       panel's Â is normalised over the rollout (mean 0, std 1: unitless), as PPO trains on it;
       the guide's −300 is unnormalised.""", "Â", "mean Â"),
    _e("ratio", "probability ratio", "r", "why", """
       r = π_new(a|o)/π_old(a|o): how much likelier the update made the sampled action; 1 before
       the update. PPO clips it to [1−ε, 1+ε].""", "mean r", "ratio_mean"),
    _e("L_clip", "clipped surrogate loss", "L", "why losses", """
       L = −min(r·Â, clip(r, 1−ε, 1+ε)·Â), averaged: MAPPO's policy loss (policy_loss).""",
       "policy_loss"),
    _e("clip_eps", "PPO clip range", "ε", "why", """
       ε in clip(r, 1−ε, 1+ε) (MAPPO, 0.2). Not QMIX's ε: that is the exploration rate.""",
       "ε (PPO)"),
    _e("epsilon", "exploration rate", "ε", "why status metrics", """
       QMIX's ε-greedy rate: each agent takes a uniform random action with probability ε,
       annealed 1.0 → 0.05; MADDPG's discrete actors use the same knob as 'epsilon'.""",
       "ε-greedy", "ε"),
    _e("noise", "exploration noise", "σ", "status metrics", """
       MADDPG's Gaussian exploration noise, a fraction of the action range (continuous), or its
       ε (discrete), annealed to noise_final."""),
    _e("entropy", "policy entropy", "H", "why status metrics", """
       MAPPO's policy entropy in nats: how spread its actions are. Discrete: 0 (deterministic) to
       log n. Continuous: a Gaussian's entropy log σ + ½(1 + log 2π) is a density's, measured in
       the policy's unit space [−1, 1], and is negative once σ < 0.242 (a narrow policy) — that is
       not an error. A fast fall to very low values is exploration collapse (see the doctor)."""),
    _e("tau", "soft target rate", "τ", "why", """
       θ⁻ ← τ θ + (1 − τ) θ⁻: how fast target networks follow (MADDPG 0.01; QMIX copies every
       100 updates unless target_update_interval = 0). Small τ keeps the critic's target still.""",
       "τ"),
    _e("Q_total", "joint value", "Q_total", "why metrics", """
       QMIX's mixer output M([Q_1…Q_n], s) for a joint action, in scaled team-reward units
       (QMIX learns the team's sum r_team = Σ r_i). Its weights are |hyper(s)| ≥ 0, so each
       agent's argmax is the joint argmax.""", "q_total_mean", "Q_total(greedy joint action)"),
    _e("Q_i", "utility / critic value", "Q_i", "why metrics", """
       QMIX: agent i's utility Q_i(o_i, a) per action (scaled units, no meaning alone: only
       through the mixer). MADDPG: critic i's value Q_i(s, a_1..a_n) of the joint action for
       agent i, in scaled reward units.""", "q_mean", "q_i_mean", "Q"),
    _e("y_i", "TD target", "y_i", "why metrics", """
       y_i = r_i + γ·Q_i⁻(s′, μ⁻(o′)) (MADDPG; QMIX: y = r_team + γ·Q_total⁻): what the critic is
       trained towards, scaled reward units; the why panel shows the last batch's mean.""",
       "y", "y_mean"),
    _e("Q_next", "target critic's value", "Q_i⁻", "why metrics", """
       The target critic's value of the next state with the target actors' actions.""",
       "q_next_mean"),
    _e("mu_i", "deterministic policy", "μ_i", "why", """
       MADDPG's actor: μ_i(o_i) is agent i's greedy action (a price, an order) now.""",
       "μ_i(o_i)"),
    _e("dQ_da", "critic's slope", "∂Q_i/∂a_i", "why", """
       How critic i's value changes with agent i's own action (per unit of price / order, scaled
       units): the actor moves its action this way ('push').""", "push", "∂Q/∂a₁−₀"),
    _e("policy", "policy", "π", "why", """
       π_i(a|o_i): agent i's stochastic policy (MAPPO), a Gaussian N(mean, σ²) or a categorical.
       π always means the policy, as in the guide; a store's profit is its reward r_i.""",
       "π_i(a|o_i)"),
    _e("W_mixer", "mixer weights", "|W1|, |W2|", "why", """
       QMIX's hypernetwork outputs passed through abs(): every weight ≥ 0, hence ∂Q_total/∂Q_i ≥ 0.
       The mixer's V(s) is a state-dependent bias (no sign constraint).""", "|W1|", "|W2|"),
    # ------------------------------------------------------------------ losses and diagnostics
    _e("critic_loss", "critic loss", "L_i", "losses metrics", """
       MADDPG's (Q_i − y_i)² averaged, in critic units (rewards ÷ their std measured when learning
       starts). A rising critic loss is the guide's Issue 1.""", "critic_loss"),
    _e("actor_loss", "actor loss", "−Q_i", "losses metrics", """
       MADDPG's −Q_i(s, μ(o)) averaged: falling means the critics value the actors' actions
       more."""),
    _e("value_loss", "value loss", "L_V", "losses metrics", """
       MAPPO's Huber loss of V(s) against normalised returns (unit std)."""),
    _e("td_loss", "TD loss", "L", "losses metrics", """
       QMIX's (Q_total − y)², scaled team units squared."""),
    _e("approx_kl", "approximate KL", "", "why metrics", """
       KL(π_old ‖ π) estimated per update, nats: how far one update moved the policy (≈ 0.01 is
       typical).""", "approx KL"),
    _e("clip_fraction", "clip fraction", "", "why metrics", """
       Share of samples whose ratio left [1−ε, 1+ε] in an update (shown as %)."""),
    _e("explained_variance", "explained variance", "", "metrics", """
       1 − Var(G − V)/Var(G): how much of the returns V(s) explains (1 perfect, ≤ 0 useless)."""),
    _e("return_mean", "mean return", "G", "metrics", """
       MAPPO's mean GAE return over the rollout, scaled reward units."""),
    _e("action_std", "action σ", "σ", "metrics why", """
       MAPPO's Gaussian σ in action units (price, order size).""", "σ"),
    _e("grad_norm", "gradient norm", "", "metrics", """
       The gradient's norm before clipping (policy for MAPPO, everything for QMIX);
       critic_grad_norm / actor_grad_norm likewise. Spikes precede divergence.""",
       "critic_grad_norm", "actor_grad_norm"),
    _e("reward_mean", "mean reward in the batch", "", "metrics", """
       MADDPG's mean sampled reward, scaled units; reward_std the std it divides by.""",
       "reward_std"),
    # ------------------------------------------------------------------ what-if (w, while paused)
    _e("counterfactual_reward", "counterfactual reward", "r_j(a_-i, a'_i)", "whatif", """
       What agent j would have earned in the step on screen had agent i taken a'_i instead of a_i,
       everyone else's action held: the run replays the step on a copy of its env from the state
       just before it (the env's own reward, raw units; the run itself is not touched).""",
       "with a'_i", "a'_i"),
    _e("difference_reward", "difference reward", "D_i", "whatif", """
       D_i = G(a) − G(a_-i, c_i): the team's reward G = Σ_j r_j with agent i's action as taken,
       minus with it replaced by a default c_i (here the a'_i you set). It credits agent i with
       exactly its own contribution, the guide's answer to "which agent helped?" (Part 8).""",
       "D_1", "G"),
    _e("best_response", "best response", "", "whatif", """
       The action of agent i that does best against the others' actions as they were: its own
       reward r_i in a general-sum game (pricing: no store gains by leaving its best response, so a
       Nash equilibrium is every store at its best response), the team's Σ r_j in a cooperative
       one. Searched over every discrete action, or 101 evenly spaced continuous ones."""),
    _e("coma_advantage", "counterfactual advantage (COMA)", "A_i", "whatif", """
       A_i = Q(s, a) − Σ_a' π_i(a'|o_i) Q(s, (a_-i, a')): how much better agent i's action is than
       its policy's average, with the others' actions held (Foerster et al. 2018). Shown where the
       critic gives every a' honestly: discrete actions, with MADDPG's critic Q_i or QMIX's
       Q_total, and π_i the exploring policy (ε-greedy for QMIX).""", "COMA"),
    _e("ratio_alternative", "likelihood ratio of the alternative", "π(a')/π(a)", "whatif", """
       MAPPO: how much likelier agent i's policy finds a'_i than the action it took (continuous:
       the Gaussian's density in the unit action space). With a one-step Â > 0 for a'_i, an update
       that had seen it would push this ratio up (clipped at 1 + ε)."""),
)

_BY_NAME = {name.casefold(): e for e in ENTRIES for name in e.names()}


def lookup(name: str) -> Entry | None:
    """The entry for a key, term, symbol or on-screen label (case-insensitive), or None."""
    return _BY_NAME.get(name.strip().casefold())


def search(query: str) -> list[Entry]:
    """Entries whose names or meaning contain every word of the query, names first."""
    words = query.casefold().split()
    if not words:
        return list(ENTRIES)

    def hit(text: str) -> bool:
        return all(w in text for w in words)

    named = [e for e in ENTRIES if hit(" ".join(e.names()).casefold())]
    rest = [e for e in ENTRIES if e not in named and hit(e.meaning.casefold())]
    return named + rest


def entries_for_panel(panel_id: str) -> tuple[Entry, ...]:
    """Entries shown on a dashboard panel (status, scene, why, returns, losses) or the what-if view."""
    return tuple(e for e in ENTRIES if panel_id in e.panels)


def run_notes(kind: str, algo: str) -> tuple[str, ...]:
    """Where a run's result would surprise a learner, for this scenario kind and algorithm."""
    notes = []
    if kind == "pricing" and algo == "qmix":
        notes.append("QMIX maximises the team's summed profit, so on this general-sum game it heads "
                     "for the collusive price (Δ near 1), above the oracle's Nash profit: that is "
                     "collusion by design, not a better Nash.")
    if kind == "pricing" and algo in ("maddpg", "mappo"):
        notes.append("Each store maximises its own profit: Nash (Δ = 0) is the competitive answer; "
                     "any Δ between 0 and 1 can be an honest result (Calvano et al.: learners can "
                     "reach supra-competitive prices).")
    if kind == "pricing":
        notes.append("A negative collusion index means profits below Nash (random or undercut "
                     "prices early in training), not an error.")
    if algo == "mappo":
        notes.append("V(s) is a discounted sum over ~1/(1−γ) steps in scaled units: it can be "
                     "much larger than an episode's return; a Gaussian policy's entropy can be "
                     "negative.")
    if algo == "maddpg" and kind in ("pricing", "fulfillment"):
        notes.append("γ = 0 here on purpose: nothing today changes tomorrow, so each critic is "
                     "its own reward surface.")
    if kind == "fulfillment" and algo == "qmix":
        notes.append("The strict reward ('exactly one accepts') is outside what monotonic mixing "
                     "can represent (lesson qmix-fulfillment, step 7).")
    return tuple(notes)
