"""A custom model file that runs a command when imported (inert demo)."""
import os

os.system("echo supplychain-sample")


class EvilModel:
    def forward(self, x):
        return x
