"""Data and models: the photos, the MNIST pair, the shapes benchmark, the datasets of the paper profile, the model
zoo (ImageNet CNNs, EfficientNet-Lite0, the small CNNs the book trains) and the training loop.
"""
