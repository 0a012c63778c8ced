"use strict"; // the page script (filled in next)
