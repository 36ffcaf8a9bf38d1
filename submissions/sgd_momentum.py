"""SGD with heavy-ball momentum, L2 weight decay, linear warmup and cosine decay (`sgd`)."""

from optarena.submissions import sgd

SUBMISSION = sgd.submission("sgd_momentum", nesterov=False)
