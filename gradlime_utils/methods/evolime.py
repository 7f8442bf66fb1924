"""EvoLIME (E-LIME; Wang, Pei, Xue, Zhang): a genetic algorithm that evolves the superpixel mask itself.

A chromosome s in {0, 1}^M keeps superpixel j when s_j = 1 (the rest is painted with the hide colour, as
LIME's h(s)); its fitness is the model's probability of the explained class on that image. Full text of the
paper was not available: every constant below (population 20, 20 generations, tournament of 3, uniform
crossover 0.9, bit-flip 1/M, one elite) is a reconstruction chosen to match its claims, and a parameter.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gradlime_utils.data.images import render_masks
from gradlime_utils.data.models import ModelBundle
from gradlime_utils.validation import check_hide_color, check_seed, check_segments


def tournament_select(population: np.ndarray, fitness: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """The fittest of ``k`` individuals drawn uniformly (with replacement)."""
    if not 1 <= k:
        raise ValueError(f"tournament size must be >= 1, got {k}")
    contestants = rng.integers(0, len(population), size=k)
    return population[contestants[np.argmax(fitness[contestants])]].copy()


def uniform_crossover(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each gene swapped between the two parents with probability 1/2."""
    if a.shape != b.shape:
        raise ValueError(f"parents must have the same length, got {a.shape} and {b.shape}")
    swap = rng.random(a.shape) < 0.5
    return np.where(swap, b, a), np.where(swap, a, b)


def bitflip(chromosome: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Flip each gene independently with probability ``rate``."""
    if not 0 <= rate <= 1:
        raise ValueError(f"mutation rate must be in [0, 1], got {rate}")
    flips = rng.random(chromosome.shape) < rate
    return np.where(flips, 1 - chromosome, chromosome).astype(chromosome.dtype)


# a chromosome is a row of LIME's Z': the image it stands for is LIME's h(s)
render = render_masks


@dataclass
class EvolutionResult:
    """The best chromosome found, its fitness, and the run's history."""

    #: the best chromosome: one 0/1 gene per superpixel (1 = kept)
    best: np.ndarray
    #: the model's probability of ``target`` on the image that keeps only ``best``'s superpixels
    best_fitness: float
    #: per generation (generation 0 first): the best and the mean fitness of the population
    history_best: list[float]
    history_mean: list[float]
    #: per generation: the best chromosome (what the convergence figure's masks show)
    history_best_chromosomes: list[np.ndarray]
    #: images the model was asked about: the first population, then the children of every generation
    queries: int
    seconds: float
    #: the explained class index
    target: int
    #: the run's settings, with the mutation rate actually used
    params: dict = field(default_factory=dict)

    def mask(self, segments: np.ndarray) -> np.ndarray:
        """The best chromosome as a pixel mask over ``segments``."""
        return self.best.astype(bool)[segments]

    @property
    def size(self) -> int:
        """How many superpixels the best chromosome keeps."""
        return int(self.best.sum())


def evolve_explanation(bundle: ModelBundle, image: np.ndarray, segments: np.ndarray, target: int | None = None,
                       population: int = 20, generations: int = 20, tournament: int = 3,
                       crossover_rate: float = 0.9, mutation_rate: float | None = None, elitism: int = 1,
                       hide_color=0, parsimony: float = 0.0, seed: int = 0,
                       seed_all_ones: bool = False) -> EvolutionResult:
    """Evolve a superpixel mask that maximises the probability of ``target`` (default: the predicted class).

    Every generation is evaluated as one batch through ``bundle.predict_proba``. Fitness ties are broken
    towards fewer superpixels; ``parsimony`` (lambda) subtracts ``lambda * |s| / M`` as an ablation knob.
    """
    image = np.asarray(image)
    segments = check_segments(segments, image.shape[:2])
    hide_color = check_hide_color(hide_color)
    seed = check_seed(seed)
    m = int(segments.max()) + 1
    if population < 2 or generations < 0:
        raise ValueError(f"population must be >= 2 and generations >= 0, got {population}, {generations}")
    if not 0 <= elitism < population:
        raise ValueError(f"elitism must be in [0, population), got {elitism}")
    if not 0 <= crossover_rate <= 1:
        raise ValueError(f"crossover_rate must be in [0, 1], got {crossover_rate}")
    rate = 1.0 / m if mutation_rate is None else mutation_rate
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    if target is None:
        target = int(np.argmax(bundle.predict_proba(image[None])[0]))
    elif not 0 <= target < bundle.num_classes:
        raise ValueError(f"target must be a class index in [0, {bundle.num_classes}), got {target}")
    queries = 0

    def evaluate(pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal queries
        queries += len(pop)
        proba = bundle.predict_proba(render(image, segments, pop, hide_color))[:, target].astype(float)
        # ties towards fewer superpixels: a tiny size penalty below any probability difference that matters
        return proba - parsimony * pop.sum(1) / m - 1e-9 * pop.sum(1), proba

    pop = (rng.random((population, m)) < 0.5).astype(np.uint8)
    if seed_all_ones:
        pop[0] = 1
    fit, prob = evaluate(pop)
    history_best, history_mean = [float(fit.max())], [float(fit.mean())]
    history_chromosomes = [pop[int(np.argmax(fit))].copy()]
    for _ in range(generations):
        order = np.argsort(-fit, kind="stable")
        elite = pop[order[:elitism]].copy()
        children = []
        while len(children) < population - elitism:
            a = tournament_select(pop, fit, tournament, rng)
            b = tournament_select(pop, fit, tournament, rng)
            if rng.random() < crossover_rate:
                a, b = uniform_crossover(a, b, rng)
            children += [bitflip(a, rate, rng), bitflip(b, rate, rng)]
        children = np.asarray(children[: population - elitism], dtype=np.uint8)
        child_fit, child_prob = evaluate(children)
        pop = np.concatenate([elite, children])
        fit = np.concatenate([fit[order[:elitism]], child_fit])
        prob = np.concatenate([prob[order[:elitism]], child_prob])
        history_best.append(float(fit.max()))
        history_mean.append(float(fit.mean()))
        history_chromosomes.append(pop[int(np.argmax(fit))].copy())
    best = int(np.argmax(fit))
    return EvolutionResult(best=pop[best].copy(), best_fitness=float(prob[best]), history_best=history_best,
        history_best_chromosomes=history_chromosomes,
        history_mean=history_mean, queries=queries, seconds=time.perf_counter() - start, target=target,
        params={"population": population, "generations": generations, "tournament": tournament,
                "crossover_rate": crossover_rate, "mutation_rate": rate, "elitism": elitism,
                "parsimony": parsimony, "seed": seed})


def ga_budget(population: int = 20, generations: int = 20, elitism: int = 1) -> int:
    """Model queries of one :func:`evolve_explanation` run: the first population, then ``population - elitism``
    children per generation (the elite is not re-evaluated): 20 + 20 × 19 = 400 with the defaults."""
    return int(population) + int(generations) * (int(population) - int(elitism))


def queries_to_reach(result: EvolutionResult, target: float) -> int | None:
    """Queries a GA run spent before its best probability first reached ``target`` (None: never)."""
    population = result.params["population"]
    per_generation = population - result.params["elitism"]
    best = np.maximum.accumulate(np.asarray(result.history_best) + 0.0)
    # history_best holds the fitness (p minus a tiny size tie-break): compare with a tolerance far above it
    hit = np.flatnonzero(best >= target - 1e-6)
    return None if len(hit) == 0 else int(population + hit[0] * per_generation)
