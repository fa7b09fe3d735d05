"""`keras-alexnet visualize` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import visualize

if __name__ == "__main__":
    visualize.run()
