"""`python -m keras_alexnet.commands <command> [flags]`: `keras-alexnet` without its script."""

from keras_alexnet.commands import main

main()
