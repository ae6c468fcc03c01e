"""Tracks: bigWig files, the UCSC hub, the IGV session and igv.js page, and a server for them."""
