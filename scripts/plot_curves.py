"""`keras-alexnet plot-curves` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import plot_curves

if __name__ == "__main__":
    plot_curves.run()
