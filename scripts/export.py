"""`keras-alexnet export` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import export

if __name__ == "__main__":
    export.run()
