"""fintag.train"""
