"""`keras-alexnet evaluate` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import evaluate

if __name__ == "__main__":
    evaluate.run()
