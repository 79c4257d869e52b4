"""fintag.serve"""
