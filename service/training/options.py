"""The names the training CLI accepts, kept free of torch so building the parser stays cheap."""

LOSS_NAMES = (
    "cross_entropy",
    "focal",
    "flsd53",
    "flsd52",
    "anyloss_accuracy",
    "anyloss_f1",
    "anyloss_fbeta",
    "anyloss_gmean",
    "anyloss_balanced_accuracy",
    "anyloss_mcc",
)
ARCHITECTURES = ("mlp", "cnn", "cnn1d")
BUNDLED_DATASETS = ("digits", "breast_cancer", "wine", "iris")
# Generated at run time by a package's procedural generator (never downloaded); takes --samples.
GENERATED_DATASETS = ("mnist1d",)
OPTIMISERS = ("adam", "sgd")
