"""gradlime_utils: the utility package behind the GradLIME / GAD reproducible companion book.

Chapters import from here; each concept lives in its own module.
"""
from gradlime_utils.cache import atomic_torch_save, cache_dir, config_key, load_checkpoint
from gradlime_utils.data.datasets import DATASET_NAMES, BinaryDataset, image_files, load_binary_dataset, mnist_arrays
from gradlime_utils.data.images import SAMPLE_IMAGES, load_image
from gradlime_utils.data.models import MODEL_NAMES, ModelBundle, imagenet_class_names, load_model
from gradlime_utils.experiments.ch01_lime import (StabilityCurve, describe_stability, plot_stability,
                                                  seeded_neighborhoods, stability_curve, stability_study,
                                                  stability_summary)
from gradlime_utils.methods.attributions import ATTRIBUTION_METHODS, attribution_maps
from gradlime_utils.methods.evolime import EvolutionResult, evolve_explanation
from gradlime_utils.methods.gad import SupportModels, distanced_targets, gad_map, train_support_models
from gradlime_utils.methods.gradcam import GradCamResult, gradcam
from gradlime_utils.methods.lime_heatmap import LimeHeatmap, lime_heatmap
from gradlime_utils.methods.neighborhood import SEGMENTATIONS, Neighborhood, sample_neighborhood, segment_image
from gradlime_utils.methods.surrogate import (MODES, SurrogateExplanation, explain_gradlime, explain_lime,
                                              superpixel_activation)
from gradlime_utils.metrics.hull import convex_hull_mask, relative_complexity, relative_sensitivity
from gradlime_utils.metrics.maps import deletion_insertion, occlusion_sensitivity
from gradlime_utils.plotting import CMAPS, glue
from gradlime_utils.runtime import (DEVICES, PROFILES, Size, Sizes, check_profile, environment_report, resolve_device,
                                    write_json, write_rows, set_seed, start_chapter)
from gradlime_utils.widgets import slider_figure

__version__ = "0.1.0"

__all__ = [
    "ATTRIBUTION_METHODS", "EvolutionResult", "SupportModels", "evolve_explanation", "attribution_maps", "convex_hull_mask", "distanced_targets",
    "gad_map", "image_files", "LimeHeatmap", "deletion_insertion", "lime_heatmap", "occlusion_sensitivity",
    "relative_complexity", "relative_sensitivity", "train_support_models",
    "BinaryDataset", "DATASET_NAMES", "DEVICES", "GradCamResult", "MODEL_NAMES", "MODES", "ModelBundle",
    "Neighborhood", "PROFILES", "SAMPLE_IMAGES", "SEGMENTATIONS", "SurrogateExplanation",
    "atomic_torch_save", "Size", "Sizes", "cache_dir", "check_profile", "config_key", "environment_report",
    "explain_gradlime", "explain_lime", "gradcam", "imagenet_class_names", "load_binary_dataset",
    "load_checkpoint", "load_image", "load_model", "mnist_arrays", "resolve_device", "sample_neighborhood",
    "segment_image", "set_seed", "slider_figure", "start_chapter", "stability_curve", "StabilityCurve", "stability_study", "stability_summary", "seeded_neighborhoods",
    "plot_stability", "describe_stability", "write_json", "write_rows", "superpixel_activation", "glue", "CMAPS",
]
