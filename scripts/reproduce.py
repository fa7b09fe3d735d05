"""`keras-alexnet reproduce` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import reproduce

if __name__ == "__main__":
    reproduce.run()
