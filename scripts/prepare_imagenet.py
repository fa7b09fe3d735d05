"""`keras-alexnet prepare-imagenet` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import prepare_imagenet

if __name__ == "__main__":
    prepare_imagenet.run()
