"""`keras-alexnet demo` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import demo

if __name__ == "__main__":
    demo.run()
