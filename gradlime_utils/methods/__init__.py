"""The explanation methods: LIME's neighbourhood and surrogates with GradLIME's Eq. 8-9, Grad-CAM, the gradient
attributions (captum) and GAD's support models.
"""
