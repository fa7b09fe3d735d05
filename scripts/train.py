"""`keras-alexnet train` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import train

if __name__ == "__main__":
    train.run()
