"""SGD with Nesterov momentum, L2 weight decay, linear warmup and cosine decay (`sgd`)."""

from optarena.submissions import sgd

SUBMISSION = sgd.submission("sgd_nesterov", nesterov=True)
