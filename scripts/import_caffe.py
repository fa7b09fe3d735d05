"""`keras-alexnet import-caffe` from a clone: see keras_alexnet/commands/."""

from keras_alexnet.commands import import_caffe

if __name__ == "__main__":
    import_caffe.run()
