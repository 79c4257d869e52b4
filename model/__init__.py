"""fintag.model"""
