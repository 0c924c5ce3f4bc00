#!/usr/bin/env python3
"""Writes examples/web/data/: a small, made-up web crawl for the bundled pipeline.

The crawl imitates what a Common Crawl segment looks like to a dataset pipeline: HTML pages
from some thirty sites in English, German, French and Spanish (and some Italian, Portuguese
and Dutch), each site with its own navigation, cookie banner, sidebar, footer and scripts
around the article; among them the pages every crawl has and no dataset wants: empty
JavaScript shells, "page not found" stubs, keyword-stuffed SEO pages, lorem-ipsum theme
demos, hashtag clouds, price lists, the same article under a tracking URL (exact copy) and
copies republished by aggregator sites with small edits (near duplicates). Articles mention e-mail addresses and
phone numbers. All names, addresses and numbers are invented.

Deterministic: the same seed gives the same files (gzip with no timestamp), so the bundled
data can be regenerated and checked with `python3 examples/web/generate.py --check`.
Python 3 standard library only.
"""

import argparse
import gzip
import io
import json
import random
import re
import sys
import zlib
from pathlib import Path

SEED = 12
PAGES = 600          # original pages; duplicates and copies come on top
SEGMENTS = 4         # output files, like the segments of a crawl
OUT = Path(__file__).resolve().parent / "data"

# ---------------------------------------------------------------------------------------
# Language material: slot values, titles and sentences per topic, site furniture.
# Sentences are templates with {slots}; a page draws a few of them without repetition.
# ---------------------------------------------------------------------------------------

LANGS = {
    "en": {
        "first": ["Emma", "James", "Olivia", "Daniel", "Grace", "Samuel", "Chloe", "Henry", "Ruth", "Marcus", "Priya", "Tom"],
        "last": ["Walker", "Bennett", "Hughes", "Okafor", "Lindqvist", "Morgan", "Patel", "Reyes", "Fletcher", "Dunn"],
        "city": ["Riverside", "Millbrook", "Ashford", "Eastport", "Cedar Falls", "Port Haven", "Kingsley", "Oakmont"],
        "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
        "month": ["March", "April", "May", "June", "September", "October"],
        "place": ["Harrow Ridge", "Blackwater Lake", "Miller's Gap", "the Elk Valley", "Saddleback Peak", "Fern Creek"],
        "dish": ["apple crumble", "chicken pot pie", "lentil soup", "banana bread", "beef chili", "lemon tart", "pumpkin risotto"],
        "topics": {
            "news": {
                "titles": [
                    "{city} council approves new budget for road repairs",
                    "Library in {city} to extend opening hours from {month}",
                    "{city} school district hires {num} new teachers",
                    "Farmers market returns to downtown {city}",
                    "Residents of {city} debate plans for a new bus depot",
                ],
                "sentences": [
                    "The city council of {city} voted {yes} to {no} on {weekday} [evening|night|afternoon] to [approve|back|adopt] the [proposal|plan|measure].",
                    "Mayor {name} said the decision was [overdue|long overdue|the right one] and thanked [residents|neighbors|local families] for their [patience|input|support].",
                    "The plan sets aside {money} million dollars over the next {num} years[| for design and construction| for the first two phases].",
                    "[Several|Dozens of|About {num}] residents spoke during the public comment period, [most of them|nearly all|the majority] in favor of the changes.",
                    "Work on the first phase is expected to [begin|start] in {month} and should take [about|roughly|around] {num} weeks.",
                    "[Critics|Opponents|Two council members] argue that the cost estimates are too optimistic and that the schedule will [slip|not hold].",
                    "A spokesperson for the [county|city|transit authority] said traffic would be diverted [through the industrial park|along {city} Road|over the old highway] during construction.",
                    "The measure passed after a [long|heated|two-hour] debate about parking, noise and the safety of children walking to school.",
                    "Local [business owners|shopkeepers|restaurant owners] have asked the city to keep at least one lane open on [Main Street|Market Street|Church Street].",
                    "According to the [latest figures|most recent survey|city's own numbers], about {pct} percent of households in {city} use public transport every week.",
                    "{name}, who has lived on [Elm|Maple|River|Chestnut] Street for {num2} years, said [the street needed the change|it was about time|nobody had asked the neighbors].",
                    "Officials urged drivers to avoid the area and to follow the posted detours [until further notice|through the weekend|while the work lasts].",
                    "Organizers expect more than {num} [vendors|stalls|farms] and [several thousand|a few thousand|close to {num2} thousand] visitors on opening day.",
                    "The council will hold [another|a second|a final] hearing on the project in {month}, and the meeting is open to the public.",
                    "Questions about the program can be sent to {email} or [asked|answered] by phone at {phone}.",
                    "[Residents|Parents|Readers] who want to take part can [contact|write to] {name} at {email}[| or call {phone}].",
                    "The superintendent said the new hires would reduce class sizes in the [two|three] fastest-growing schools[| in {city}| on the east side].",
                    "[Last year|In {year2}|Two years ago] the same report found that the number of visitors had [doubled|nearly doubled|grown by a third] since the market moved downtown.",
                    "[Not everyone is convinced|The vote was not unanimous|Some neighbors remain skeptical], and a petition against the plan has collected {num} signatures.",
                    "The next council meeting is scheduled for {weekday}, {month} {day}, at [6|7] p.m. in the [council chamber|town hall|public library].",
                ],
            },
            "recipe": {
                "titles": [
                    "Easy {dish} for busy weeknights",
                    "My grandmother's {dish}",
                    "The best {dish} you will ever make",
                    "{dish} in under an hour",
                ],
                "sentences": [
                    "This recipe has been in our family [for as long as I can remember|for three generations|since my mother was a child], and it [never lasts more than a day|always disappears fast|is gone by the next morning].",
                    "It is a forgiving dish, so do not worry if you are missing [one or two of the ingredients|an ingredient or two|something on the list].",
                    "I usually make a double batch on [Sunday|the weekend|a rainy afternoon] and freeze half of it for the following week.",
                    "The secret is to take your time with the first step and let the flavors [develop slowly|come together|build].",
                    "If you prefer a lighter version, you can replace the butter with [olive oil|sunflower oil|a little yogurt].",
                    "Leftovers keep well in the fridge for up to {num2} days in an airtight container.",
                    "My [children|kids|husband|partner] ask for it every time the weather turns [cold|grey|wet].",
                    "Serve it warm with [a green salad|steamed vegetables|crusty bread] or [a slice of fresh bread|a bowl of rice|a dollop of sour cream].",
                    "You can prepare most of it the evening before and finish it [just before dinner|when your guests arrive|in the morning].",
                    "A reader named {name} wrote to me [last winter|a few months ago|after the last post] suggesting a pinch of [smoked paprika|nutmeg|cinnamon], and now I always add it.",
                    "Do not open the oven door during the first [twenty|fifteen|twenty-five] minutes, or it may [collapse|sink|dry out].",
                    "It tastes even better the next day, once everything has had time to [rest|settle|soak in].",
                    "I first made this [for a school fundraiser|for my sister's wedding|during a snowstorm] in {year}, and it has been a favorite ever since.",
                    "[Feel free to|You can always] double the garlic if you like a stronger flavor.",
                    "We buy our vegetables at the market in {city}, but any good grocery store will do.",
                ],
                "steps": [
                    "Preheat the oven to {temp} degrees and [grease|butter|line] a [large|deep|square] baking dish.",
                    "Chop the onions [finely|roughly] and cook them in a little [butter|oil] until [soft|golden|translucent].",
                    "Mix the dry ingredients in a [large|big] bowl and make a well in the center.",
                    "Stir in the liquid a little at a time until the mixture is [smooth|thick and smooth|just combined].",
                    "Pour everything into the dish and bake for {num} minutes until [golden|golden brown|set in the middle].",
                    "Let it [cool|rest] for [ten|fifteen] minutes before you cut it into portions.",
                    "Season with salt and pepper and taste before serving.",
                    "Simmer [gently|over low heat] for {num} minutes, stirring from time to time.",
                ],
                "ingredients": ["{small} cups of flour", "2 large eggs", "1 onion, finely chopped", "200 grams of butter",
                                "1 teaspoon of salt", "a handful of fresh parsley", "500 ml of vegetable stock",
                                "3 ripe bananas", "1 cup of brown sugar", "2 cloves of garlic"],
                "ingredients_heading": "Ingredients",
                "steps_heading": "Method",
            },
            "travel": {
                "titles": [
                    "A weekend hike to {place}",
                    "Three days around {place}: what I learned",
                    "Camping at {place} in {month}",
                    "Is {place} worth the detour?",
                ],
                "sentences": [
                    "We left the car at the trailhead just after [seven|six|eight] in the morning, when the parking lot was still [empty|almost empty|quiet].",
                    "The first part of the trail climbs [steadily|gently|steeply] through a [pine|spruce|mixed] forest for about {num2} miles.",
                    "After the [second|first|old wooden] bridge the path becomes narrower and you need to watch your step.",
                    "From the top you can see all the way to {city} on a [clear|good|cloudless] day.",
                    "We met only a handful of other hikers, most of them [locals walking their dogs|families with small children|trail runners].",
                    "The hut near {place} sells [coffee and sandwiches|soup and coffee|cold drinks and pie], but it closes early outside the summer season.",
                    "Bring more water than you think you need, because there is no [spring|stream|tap] along the ridge.",
                    "The weather changed quickly in the afternoon, and we were glad we had packed [rain jackets|warm layers|an extra sweater].",
                    "If you have young children, the shorter loop around the lake is a better choice.",
                    "We spent the night at a small campground run by a friendly couple from {city}.",
                    "Reservations for the campground can be made by e-mail to {email} or by calling {phone}.",
                    "The whole loop took us about {num2} hours, including a long [lunch break|rest|swim] by the water.",
                    "In {month} the meadows are full of [wildflowers|butterflies|color] and the crowds have not arrived yet.",
                    "On the way back we stopped in {city} for [pie|pancakes|ice cream] at a diner that has been open since {year}.",
                    "The signs are clear, but a paper map is still useful where the phone signal drops.",
                    "My friend {name} had done the route [twice before|the year before|as a teenager] and knew every turn.",
                    "[Parking costs|The day pass costs|Entry to the park is] {num2} dollars, and you can pay [by card|at the machine|online].",
                    "We [saw|spotted] [two deer|a family of marmots|an eagle] just below the summit, which made the climb worth it.",
                ],
            },
            "tech": {
                "titles": [
                    "How I cut our build times in half",
                    "Debugging a memory leak in production",
                    "Why we moved our cron jobs to a queue",
                    "Notes on configuring a reverse proxy",
                ],
                "sentences": [
                    "Last month our nightly build started taking more than {num} minutes, and nobody knew why.",
                    "The first thing I did was to measure where the time actually went.",
                    "It turned out that most of it was spent [downloading the same dependencies again and again|compiling code that had not changed|waiting for a single slow test].",
                    "Caching the [package directory|build artifacts|dependency folder] between runs brought the time down immediately.",
                    "We also split the test suite into {num2} parts that run in parallel.",
                    "None of this is new, but it is easy to forget once a project grows.",
                    "The logs showed the worker process growing by a few megabytes every hour.",
                    "A heap profile pointed at a cache that was never cleared after a request finished.",
                    "The fix was a single line, but finding it took the better part of [two days|a week|a long weekend].",
                    "If you run into something similar, write down every hypothesis before you test it.",
                    "Feel free to send questions to {email}, I read everything even if I answer slowly.",
                    "Since the change the service has been running for {num} days without a restart.",
                    "My colleague {name} suggested [a queue|a simple lock file|a second worker] instead, and in hindsight that was the better idea.",
                    "The old cron setup ran on a single machine, so one reboot at the wrong time meant a missed job.",
                    "The proxy now [terminates TLS|caches static files|adds the request id to every log line], which the application no longer has to do.",
                ],
            },
        },
        "ui": {
            "nav": ["Home", "News", "Sports", "Opinion", "Events", "Contact", "About us", "Subscribe"],
            "cookie": "We use cookies to improve your experience. By continuing to browse this site you agree to our use of cookies.",
            "accept": "Accept all",
            "related": "Related stories",
            "share": "Share this article",
            "by": "By {name}",
            "updated": "Updated {date}",
            "rights": "All rights reserved.",
            "footer_links": ["Privacy policy", "Terms of use", "Advertise", "Careers"],
            "newsletter": "Sign up for our newsletter and never miss a story.",
            "comments": "Comments are closed.",
            "syndication": "This article first appeared in {site}.",
            "not_found": ["Page not found", "Sorry, the page you are looking for does not exist or has been moved."],
            "spam": ["cheap flights", "best price", "last minute deals", "book now", "discount hotels"],
        },
        "sites": [
            ("The Riverside Gazette", "riversidegazette.com", "news"),
            ("Millbrook Daily", "millbrookdaily.com", "news"),
            ("Kitchen Ledger", "kitchenledger.net", "recipe"),
            ("Trail Notes", "trailnotes.org", "travel"),
            ("Stack and Heap", "stackandheap.dev", "tech"),
        ],
    },
    "de": {
        "first": ["Anna", "Lukas", "Sophie", "Jonas", "Marie", "Felix", "Lena", "Paul", "Clara", "Tobias", "Ayse", "Stefan"],
        "last": ["Müller", "Schneider", "Fischer", "Weber", "Wagner", "Becker", "Hoffmann", "Schäfer", "Yilmaz", "Krüger"],
        "city": ["Freiburg", "Göttingen", "Bamberg", "Konstanz", "Lüneburg", "Tübingen", "Passau", "Würzburg"],
        "weekday": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"],
        "month": ["März", "April", "Mai", "Juni", "September", "Oktober"],
        "place": ["Feldberg", "Schauinsland", "Belchen", "Kandel", "Herzogenhorn", "Blauen"],
        "dish": ["Apfelstrudel", "Linsensuppe", "Zwiebelkuchen", "Kartoffelsalat", "Käsespätzle", "Rinderrouladen"],
        "topics": {
            "news": {
                "titles": [
                    "Gemeinderat {city} beschließt neuen Radweg",
                    "Stadtbibliothek {city} verlängert ab {month} die Öffnungszeiten",
                    "{city} stellt {num} neue Erzieherinnen und Erzieher ein",
                    "Wochenmarkt in {city} zieht auf den Münsterplatz",
                ],
                "sentences": [
                    "Der Gemeinderat von {city} hat am {weekday}abend mit {yes} zu {no} Stimmen für den [Vorschlag|Antrag|Plan] der Verwaltung gestimmt.",
                    "Im Rathaus sprach {name} von einer [lange überfälligen|richtigen|mutigen] Entscheidung.",
                    "Für das Vorhaben sind in den nächsten {num2} Jahren insgesamt {money} Millionen Euro eingeplant.",
                    "In der Bürgerfragestunde meldeten sich [zahlreiche|mehr als {num}|einige] Anwohnerinnen und Anwohner zu Wort.",
                    "Die Bauarbeiten sollen im {month} beginnen und [etwa|rund|voraussichtlich] {num} Wochen dauern.",
                    "[Kritiker|Die Opposition|Der Bund der Steuerzahler] hält die Kostenschätzung für zu optimistisch und rechnet mit Verzögerungen.",
                    "Während der Arbeiten wird der Verkehr [über das Gewerbegebiet|über die Bahnhofstraße|über die Umgehungsstraße] umgeleitet.",
                    "Die [Händler|Geschäftsleute|Gastronomen] in der Innenstadt fordern, dass mindestens eine Fahrspur offen bleibt.",
                    "Nach Angaben der Stadt nutzen rund {pct} Prozent der Haushalte mindestens einmal pro Woche [den Bus|Bus und Bahn|den Nahverkehr].",
                    "Die Polizei bittet Autofahrer, den Bereich [weiträumig zu umfahren|bis auf Weiteres zu meiden|über das Wochenende zu meiden].",
                    "Die Veranstalter rechnen mit mehr als {num} Ständen und [mehreren tausend|rund {num2}000] Besuchern.",
                    "Eine weitere öffentliche Sitzung zu dem Projekt ist für {month} geplant.",
                    "Fragen zum Programm beantwortet das Bürgerbüro unter {email} oder telefonisch unter {phone}.",
                    "Wer sich beteiligen möchte, kann sich [bis Ende {month}|ab sofort] bei {name} melden, per E-Mail an {email}.",
                    "Schon [im vergangenen Jahr|{year2}] hatte sich die Zahl der Besucher [nahezu verdoppelt|um ein Drittel erhöht].",
                    "Viele Eltern begrüßen die Entscheidung, weil die Gruppen zuletzt deutlich zu groß waren.",
                    "Die Opposition kündigte an, den Beschluss im [Haushaltsausschuss|Bauausschuss] noch einmal zu prüfen.",
                    "{name} wohnt seit {num2} Jahren in der [Uferstraße|Mühlgasse|Lindenallee] und hält die Entscheidung für [richtig|überfällig|einen Fehler].",
                    "[Nicht alle sind überzeugt|Die Entscheidung bleibt umstritten]: Eine Unterschriftenliste gegen das Vorhaben zählt bereits {num} Namen.",
                ],
            },
            "recipe": {
                "titles": [
                    "{dish} wie bei Oma",
                    "Einfaches Rezept für {dish}",
                    "{dish}: schnell, günstig und lecker",
                    "Unser liebstes Rezept für {dish}",
                ],
                "sentences": [
                    "Dieses Rezept stammt von meiner [Großmutter|Oma aus {city}|Tante] und ist bei uns jedes Jahr ein fester Bestandteil des [Herbstes|Winters|Sonntagsessens].",
                    "Das Gericht verzeiht kleine Fehler, also keine Sorge, wenn [eine Zutat fehlt|mal etwas fehlt].",
                    "Ich koche meistens gleich die doppelte Menge und friere die Hälfte [ein|für die nächste Woche ein].",
                    "Das Geheimnis ist, sich beim ersten Schritt [genug Zeit zu lassen|nicht zu beeilen].",
                    "Wer es leichter mag, kann die Butter durch [Olivenöl|Rapsöl|etwas Joghurt] ersetzen.",
                    "Reste halten sich im Kühlschrank [gut|problemlos] {num2} Tage.",
                    "Meine [Kinder|Enkel|Mitbewohner] wünschen es sich, sobald es draußen [kalt|ungemütlich|nass] wird.",
                    "Dazu passt ein frischer grüner Salat oder [ein Stück Bauernbrot|Salzkartoffeln|ein Glas Apfelschorle].",
                    "Am nächsten Tag schmeckt es fast noch besser als frisch gekocht.",
                    "Eine Leserin aus {city} hat mir geschrieben, dass sie noch etwas [Muskatnuss|Majoran|Zimt] dazugibt, und seitdem mache ich das auch.",
                    "Die Backofentür sollte in den ersten [zwanzig|fünfzehn] Minuten geschlossen bleiben.",
                    "Zum ersten Mal habe ich es {year} [für ein Schulfest|zu einer Hochzeit|an einem verschneiten Sonntag] gekocht.",
                    "Das Gemüse kaufen wir auf dem Wochenmarkt in {city}, aber jeder gute Supermarkt tut es auch.",
                    "Wer mag, nimmt [die doppelte Menge Knoblauch|etwas mehr Pfeffer|frische Kräuter aus dem Garten].",
                ],
                "steps": [
                    "Den Backofen auf {temp} Grad vorheizen und eine [große|tiefe] Form einfetten.",
                    "Die Zwiebeln [fein|grob] würfeln und in etwas Butter glasig dünsten.",
                    "Die trockenen Zutaten in einer Schüssel gut miteinander vermischen.",
                    "Nach und nach die Flüssigkeit einrühren, bis ein glatter Teig entsteht.",
                    "Alles in die Form geben und etwa {num} Minuten [goldbraun|knusprig] backen.",
                    "Vor dem Anschneiden [zehn|fünfzehn] Minuten abkühlen lassen.",
                    "Mit Salz und Pfeffer abschmecken und warm servieren.",
                    "Bei schwacher Hitze etwa {num} Minuten köcheln lassen und gelegentlich umrühren.",
                ],
                "ingredients": ["{small}00 g Mehl", "2 Eier (Größe L)", "1 Zwiebel, fein gewürfelt", "200 g Butter",
                                "1 TL Salz", "1 Bund Petersilie", "500 ml Gemüsebrühe", "4 säuerliche Äpfel",
                                "100 g brauner Zucker", "2 Knoblauchzehen"],
                "ingredients_heading": "Zutaten",
                "steps_heading": "Zubereitung",
            },
            "travel": {
                "titles": [
                    "Wanderung auf den {place}",
                    "Drei Tage rund um den {place}",
                    "Mit dem Rad zum {place}",
                    "Lohnt sich der Umweg zum {place}?",
                ],
                "sentences": [
                    "Wir haben das Auto kurz nach [sieben|sechs|acht] Uhr am Wanderparkplatz abgestellt, als dort noch [niemand|kaum jemand] war.",
                    "Der erste Abschnitt führt [gleichmäßig|stetig|ziemlich steil] ansteigend durch einen dichten [Fichtenwald|Mischwald|Buchenwald].",
                    "Nach der [zweiten|alten] Brücke wird der Weg schmaler und an einigen Stellen etwas rutschig.",
                    "Bei klarer Sicht reicht der Blick vom Gipfel bis zu den Alpen.",
                    "Unterwegs sind uns nur wenige andere Wanderer begegnet, die meisten davon [mit Hund|mit Kindern|aus der Gegend].",
                    "Die Hütte am {place} bietet [Kaffee und Kuchen|Suppe und Getränke|Vesper und Most], schließt aber außerhalb der Saison schon am Nachmittag.",
                    "Man sollte mehr Wasser mitnehmen, als man denkt, denn auf dem Kamm gibt es keine Quelle.",
                    "Am Nachmittag schlug das Wetter plötzlich um, und wir waren froh über unsere [Regenjacken|warmen Pullover].",
                    "Mit kleinen Kindern ist die kürzere Runde um den See die bessere Wahl.",
                    "Übernachtet haben wir auf einem kleinen Campingplatz, den ein freundliches Paar aus {city} betreibt.",
                    "Reservierungen nimmt der Campingplatz per E-Mail an {email} oder unter {phone} entgegen.",
                    "Für die ganze Runde haben wir mit einer langen [Mittagspause|Rast am Wasser] etwa {num2} Stunden gebraucht.",
                    "Im {month} blühen auf den Wiesen unzählige Blumen, und der große Ansturm hat noch nicht begonnen.",
                    "Auf dem Rückweg sind wir in {city} in einem Café eingekehrt, das es schon seit {year} gibt.",
                    "Die Beschilderung ist gut, trotzdem lohnt sich eine Wanderkarte, weil das Handynetz oft abbricht.",
                    "{name} war mit uns unterwegs, kannte die Strecke [schon von früher|vom letzten Sommer] und wusste an jeder Abzweigung Bescheid.",
                    "Das Parken kostet {num2} Euro am Tag, bezahlt wird [am Automaten|per App|bar].",
                    "Kurz unter dem Gipfel haben wir [zwei Gämsen|einen Fuchs|einen Bussard] gesehen, und das war den Aufstieg allein schon wert.",
                ],
            },
        },
        "ui": {
            "nav": ["Startseite", "Lokales", "Sport", "Kultur", "Meinung", "Kontakt", "Impressum", "Abo"],
            "cookie": "Wir verwenden Cookies, um Ihnen die bestmögliche Nutzung unserer Website zu ermöglichen.",
            "accept": "Alle akzeptieren",
            "related": "Das könnte Sie auch interessieren",
            "share": "Artikel teilen",
            "by": "Von {name}",
            "updated": "Aktualisiert am {date}",
            "rights": "Alle Rechte vorbehalten.",
            "footer_links": ["Datenschutz", "Impressum", "AGB", "Mediadaten"],
            "newsletter": "Jetzt den Newsletter abonnieren und nichts mehr verpassen.",
            "comments": "Die Kommentarfunktion ist geschlossen.",
            "syndication": "Dieser Artikel erschien zuerst bei {site}.",
            "not_found": ["Seite nicht gefunden", "Die angeforderte Seite existiert leider nicht mehr."],
            "spam": ["günstige Flüge", "bester Preis", "Last Minute Angebote", "jetzt buchen", "billige Hotels"],
        },
        "sites": [
            ("Stadtanzeiger Südbaden", "stadtanzeiger-suedbaden.de", "news"),
            ("Kochwerkstatt", "kochwerkstatt.de", "recipe"),
            ("Gipfelglück", "gipfelglueck-blog.de", "travel"),
        ],
    },
    "fr": {
        "first": ["Camille", "Louis", "Léa", "Hugo", "Manon", "Julien", "Chloé", "Antoine", "Inès", "Mathieu", "Sarah", "Nicolas"],
        "last": ["Martin", "Bernard", "Dubois", "Moreau", "Laurent", "Girard", "Roux", "Fontaine", "Benali", "Lefèvre"],
        "city": ["Lyon", "Annecy", "Grenoble", "Nantes", "Dijon", "Rennes", "Chambéry", "Besançon"],
        "weekday": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi"],
        "month": ["mars", "avril", "mai", "juin", "septembre", "octobre"],
        "place": ["col de la Croix", "lac de Lessy", "mont Veyrier", "plateau des Glières", "pointe de la Galoppaz"],
        "dish": ["gratin dauphinois", "tarte aux pommes", "soupe au pistou", "quiche lorraine", "bœuf bourguignon", "clafoutis"],
        "topics": {
            "news": {
                "titles": [
                    "{city} : le conseil municipal adopte le nouveau plan vélo",
                    "La médiathèque de {city} élargit ses horaires dès {month}",
                    "{city} recrute {num} animateurs pour les écoles",
                    "Le marché de {city} déménage place de la République",
                ],
                "sentences": [
                    "Le conseil municipal de {city} a adopté le projet {weekday} soir par {yes} voix contre {no}.",
                    "{name}, maire de la ville, a salué une décision [attendue depuis longtemps|courageuse|nécessaire].",
                    "Le budget prévu s'élève à {money} millions d'euros sur {num2} ans.",
                    "Lors de la séance, [plusieurs|une dizaine d'|près de {num}] habitants ont pris la parole, la plupart pour soutenir le projet.",
                    "Les travaux devraient commencer en {month} et durer [environ|à peu près|près de] {num} semaines.",
                    "[L'opposition|Une partie des élus|L'association des riverains] estime que le chiffrage est trop optimiste et craint des retards.",
                    "Pendant le chantier, la circulation sera déviée [par la zone d'activités|par l'avenue de la Gare|par le boulevard extérieur].",
                    "Les [commerçants|restaurateurs|artisans] du centre-ville demandent qu'au moins une voie reste ouverte.",
                    "Selon la ville, environ {pct} % des foyers prennent le bus au moins une fois par semaine.",
                    "La préfecture recommande aux automobilistes d'éviter le secteur [jusqu'à nouvel ordre|tout le week-end|pendant les travaux].",
                    "Les organisateurs attendent plus de {num} exposants et [plusieurs milliers de|quelque {num2} 000] visiteurs.",
                    "Une nouvelle réunion publique consacrée au projet aura lieu en {month}.",
                    "Pour toute question, la mairie répond à l'adresse {email} ou au {phone}.",
                    "Les personnes intéressées peuvent écrire à {name} à l'adresse {email}[| ou appeler le {phone}].",
                    "[L'an dernier déjà|En {year2} déjà], la fréquentation du marché avait [presque doublé|augmenté d'un tiers].",
                    "De nombreux parents saluent la mesure, car les classes étaient devenues trop chargées.",
                    "{name}, qui habite rue [des Tanneurs|du Moulin|Victor-Hugo] depuis {num2} ans, juge la décision [nécessaire|tardive|mal préparée].",
                    "[Tout le monde n'est pas convaincu|La décision reste contestée] : une pétition contre le projet a déjà recueilli {num} signatures.",
                ],
            },
            "recipe": {
                "titles": [
                    "Le {dish} de ma grand-mère",
                    "Recette facile du {dish}",
                    "Un {dish} rapide pour le soir",
                    "Notre recette préférée : le {dish}",
                ],
                "sentences": [
                    "Cette recette vient de ma [grand-mère|tante|mère] et nous la préparons chaque [automne|hiver|dimanche].",
                    "C'est un plat qui pardonne les erreurs, donc pas de panique s'il manque [un ingrédient|quelque chose].",
                    "J'en prépare souvent le double et j'en congèle la moitié pour la semaine suivante.",
                    "Le secret, c'est de prendre son temps pour la première étape.",
                    "Pour une version plus légère, on peut remplacer le beurre par [de l'huile d'olive|de l'huile de colza|un peu de yaourt].",
                    "Les restes se conservent {num2} jours au réfrigérateur dans une boîte hermétique.",
                    "Mes [enfants|petits-enfants|colocataires] le réclament dès que les journées raccourcissent.",
                    "Servez-le tiède avec [une salade verte|des légumes vapeur] et un bon morceau de pain.",
                    "Il est encore meilleur le lendemain, une fois que les saveurs se sont mariées.",
                    "Une lectrice de {city} m'a écrit qu'elle ajoute une pincée de [muscade|cannelle|piment d'Espelette], et depuis je fais pareil.",
                    "N'ouvrez pas la porte du four pendant les [vingt|quinze] premières minutes.",
                    "Je l'ai préparé pour la première fois en {year}, [pour une fête d'école|pour un mariage|un dimanche de neige].",
                    "Nous achetons nos légumes au marché de {city}, mais n'importe quel bon primeur fera l'affaire.",
                    "Si vous aimez, doublez [l'ail|les herbes|le poivre].",
                ],
                "steps": [
                    "Préchauffez le four à {temp} degrés et beurrez un [grand|large] plat.",
                    "Émincez [finement|grossièrement] les oignons et faites-les revenir dans un peu de beurre.",
                    "Mélangez les ingrédients secs dans un grand saladier.",
                    "Incorporez le liquide petit à petit jusqu'à obtenir une pâte lisse.",
                    "Versez le tout dans le plat et faites cuire {num} minutes jusqu'à ce que le dessus soit doré.",
                    "Laissez reposer [dix|quinze] minutes avant de découper.",
                    "Salez, poivrez et goûtez avant de servir.",
                    "Laissez mijoter à feu doux pendant {num} minutes en remuant de temps en temps.",
                ],
                "ingredients": ["{small}00 g de farine", "2 gros œufs", "1 oignon émincé", "200 g de beurre",
                                "1 cuillère à café de sel", "un bouquet de persil", "50 cl de bouillon de légumes",
                                "4 pommes acidulées", "100 g de sucre roux", "2 gousses d'ail"],
                "ingredients_heading": "Ingrédients",
                "steps_heading": "Préparation",
            },
            "travel": {
                "titles": [
                    "Randonnée au {place}",
                    "Trois jours autour du {place}",
                    "Bivouac au {place} en {month}",
                    "Le {place} vaut-il le détour ?",
                ],
                "sentences": [
                    "Nous avons laissé la voiture au parking un peu après [sept|six|huit] heures, quand il était encore vide.",
                    "La première partie du sentier monte [régulièrement|doucement|franchement] à travers une forêt de [sapins|hêtres|mélèzes].",
                    "Après le [deuxième|vieux] pont, le chemin se rétrécit et devient glissant par endroits.",
                    "Par temps clair, la vue depuis le sommet porte jusqu'au mont Blanc.",
                    "Nous n'avons croisé que quelques randonneurs, pour la plupart [des gens du coin avec leur chien|des familles|des traileurs].",
                    "Le refuge propose [du café et des tartes|de la soupe et des boissons], mais il ferme tôt en dehors de la saison.",
                    "Prévoyez plus d'eau que nécessaire, car il n'y a aucune source sur la crête.",
                    "L'après-midi, le temps a tourné très vite et nous étions contents d'avoir [nos vestes de pluie|une polaire].",
                    "Avec de jeunes enfants, la petite boucle autour du lac est un meilleur choix.",
                    "Nous avons dormi dans un petit camping tenu par un couple très accueillant de {city}.",
                    "On peut réserver par courriel à {email} ou par téléphone au {phone}.",
                    "La boucle complète nous a pris environ {num2} heures, [pause déjeuner comprise|baignade comprise].",
                    "En {month}, les prairies sont couvertes de fleurs et la foule n'est pas encore là.",
                    "Au retour, nous nous sommes arrêtés à {city} dans une pâtisserie ouverte depuis {year}.",
                    "Le balisage est clair, mais une carte papier reste utile là où le réseau ne passe pas.",
                    "{name}, qui nous accompagnait, connaissait déjà l'itinéraire [depuis l'enfance|depuis l'été dernier] et savait où tourner.",
                    "Le stationnement coûte {num2} euros la journée, [à régler à l'horodateur|payable par carte].",
                    "Juste sous le sommet, nous avons aperçu [deux chamois|une marmotte|un aigle royal], ce qui valait bien la montée.",
                ],
            },
        },
        "ui": {
            "nav": ["Accueil", "Actualités", "Sports", "Culture", "Opinions", "Contact", "Mentions légales", "S'abonner"],
            "cookie": "Ce site utilise des cookies pour améliorer votre expérience de navigation.",
            "accept": "Tout accepter",
            "related": "À lire aussi",
            "share": "Partager cet article",
            "by": "Par {name}",
            "updated": "Mis à jour le {date}",
            "rights": "Tous droits réservés.",
            "footer_links": ["Confidentialité", "Mentions légales", "Publicité", "Nous contacter"],
            "newsletter": "Inscrivez-vous à notre lettre d'information.",
            "comments": "Les commentaires sont fermés.",
            "syndication": "Cet article a d'abord été publié par {site}.",
            "not_found": ["Page introuvable", "La page que vous cherchez n'existe pas ou a été déplacée."],
            "spam": ["vols pas chers", "meilleur prix", "promo dernière minute", "réservez maintenant", "hôtels discount"],
        },
        "sites": [
            ("L'Écho des Alpes", "echo-des-alpes.fr", "news"),
            ("Cuisine de saison", "cuisine-de-saison.fr", "recipe"),
            ("Sentiers et sommets", "sentiers-sommets.fr", "travel"),
        ],
    },
    "es": {
        "first": ["Lucía", "Javier", "Carmen", "Diego", "Marta", "Pablo", "Elena", "Sergio", "Laura", "Andrés", "Nuria", "Raúl"],
        "last": ["García", "Fernández", "López", "Martínez", "Sánchez", "Romero", "Navarro", "Torres", "Gil", "Ortega"],
        "city": ["Granada", "Córdoba", "Salamanca", "Valencia", "Burgos", "Cádiz", "Oviedo", "Segovia"],
        "weekday": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado"],
        "month": ["marzo", "abril", "mayo", "junio", "septiembre", "octubre"],
        "place": ["Picos de Europa", "valle del Jerte", "Sierra Nevada", "cañón del Río Lobos", "lago de Sanabria"],
        "dish": ["tortilla de patatas", "gazpacho andaluz", "paella de verduras", "lentejas estofadas", "arroz con leche"],
        "topics": {
            "news": {
                "titles": [
                    "El Ayuntamiento de {city} aprueba el nuevo carril bici",
                    "La biblioteca de {city} ampliará su horario desde {month}",
                    "{city} contratará a {num} nuevos monitores escolares",
                    "El mercado de {city} se traslada a la plaza Mayor",
                ],
                "sentences": [
                    "El pleno del Ayuntamiento de {city} aprobó el proyecto el {weekday} por la [tarde|noche] con {yes} votos a favor y {no} en contra.",
                    "{name}, al frente de la alcaldía, afirmó que se trata de una decisión [largamente esperada|necesaria|valiente].",
                    "El presupuesto previsto asciende a {money} millones de euros repartidos en {num2} años.",
                    "Durante la sesión intervinieron [varios|una docena de|cerca de {num}] vecinos, la mayoría a favor de la propuesta.",
                    "Las obras comenzarán en {month} y durarán [aproximadamente|unas|alrededor de] {num} semanas.",
                    "[La oposición|Parte de los concejales|La asociación de vecinos] considera que el cálculo de costes es demasiado optimista.",
                    "Mientras duren los trabajos, el tráfico se desviará [por el polígono industrial|por la avenida de la Estación|por la ronda norte].",
                    "Los [comerciantes|hosteleros|vecinos] del centro piden que al menos un carril permanezca abierto.",
                    "Según el Ayuntamiento, cerca del {pct} % de los hogares utiliza el autobús cada semana.",
                    "Protección Civil recomienda evitar la zona [hasta nuevo aviso|durante el fin de semana].",
                    "Los organizadores esperan más de {num} puestos y [varios miles de|unos {num2} 000] visitantes.",
                    "En {month} se celebrará otra reunión pública sobre el proyecto.",
                    "Las dudas sobre el programa pueden enviarse a {email} o consultarse en el teléfono {phone}.",
                    "Quienes quieran participar pueden escribir a {name} en {email}[| o llamar al {phone}].",
                    "[El año pasado|En {year2}] el número de visitantes del mercado ya se había [duplicado|incrementado en un tercio].",
                    "Muchas familias celebran la medida, porque las aulas estaban demasiado llenas.",
                    "{name}, que vive en la calle [del Molino|Mayor|de la Fuente] desde hace {num2} años, considera la decisión [acertada|tardía|precipitada].",
                    "[No todos están convencidos|La decisión sigue siendo polémica]: una recogida de firmas contra el proyecto suma ya {num} apoyos.",
                ],
            },
            "recipe": {
                "titles": [
                    "{dish} como la de mi abuela",
                    "Receta fácil: {dish}",
                    "{dish} en menos de una hora",
                    "Nuestra receta favorita de {dish}",
                ],
                "sentences": [
                    "Esta receta viene de mi [abuela|madre|tía] y en casa la preparamos cada [otoño|invierno|domingo].",
                    "Es un plato que perdona los errores, así que no pasa nada si falta [algún ingrediente|algo].",
                    "Suelo preparar el doble y congelar la mitad para la semana siguiente.",
                    "El secreto está en tomarse su tiempo en el primer paso.",
                    "Si la prefieres más ligera, puedes sustituir la mantequilla por [aceite de oliva|aceite de girasol|un poco de yogur].",
                    "Las sobras se conservan {num2} días en la nevera en un recipiente hermético.",
                    "Mis [hijos|nietos|compañeros de piso] me la piden en cuanto empieza a hacer frío.",
                    "Acompáñala con [una ensalada verde|unas verduras al vapor] y un buen trozo de pan.",
                    "Al día siguiente está todavía más rica, cuando los sabores se han asentado.",
                    "Una lectora de {city} me escribió que añade una pizca de [pimentón ahumado|comino|canela], y desde entonces yo también lo hago.",
                    "No abras la puerta del horno durante los primeros [veinte|quince] minutos.",
                    "La preparé por primera vez en {year}, [para una fiesta del colegio|para una boda|un domingo de lluvia].",
                    "Compramos la verdura en el mercado de {city}, pero cualquier buena frutería sirve.",
                    "Si te gusta, dobla la cantidad de [ajo|hierbas|pimienta].",
                ],
                "steps": [
                    "Precalienta el horno a {temp} grados y engrasa una fuente [grande|honda].",
                    "Pica la cebolla muy fina y póchala en un poco de aceite.",
                    "Mezcla los ingredientes secos en un cuenco grande.",
                    "Añade el líquido poco a poco hasta obtener una masa lisa.",
                    "Vierte todo en la fuente y hornea unos {num} minutos hasta que esté dorado.",
                    "Deja reposar [diez|quince] minutos antes de cortar.",
                    "Sazona con sal y pimienta y prueba antes de servir.",
                    "Deja cocer a fuego lento unos {num} minutos, removiendo de vez en cuando.",
                ],
                "ingredients": ["{small}00 g de harina", "2 huevos grandes", "1 cebolla picada", "200 g de mantequilla",
                                "1 cucharadita de sal", "un manojo de perejil", "500 ml de caldo de verduras",
                                "4 patatas medianas", "100 g de azúcar moreno", "2 dientes de ajo"],
                "ingredients_heading": "Ingredientes",
                "steps_heading": "Preparación",
            },
            "travel": {
                "titles": [
                    "Ruta de senderismo por {place}",
                    "Tres días en {place}",
                    "Acampar en {place} en {month}",
                    "¿Merece la pena el desvío a {place}?",
                ],
                "sentences": [
                    "Dejamos el coche en el aparcamiento poco después de las [siete|seis|ocho], cuando todavía estaba vacío.",
                    "El primer tramo del sendero sube de forma [constante|suave|exigente] a través de un bosque de [pinos|hayas|robles].",
                    "Después del [segundo|viejo] puente el camino se estrecha y en algunos puntos resbala.",
                    "Con el cielo despejado, desde la cima se ve todo el valle.",
                    "Solo nos cruzamos con unos pocos senderistas, casi todos [vecinos de la zona con sus perros|familias con niños|corredores].",
                    "El refugio sirve [café y bocadillos|caldo y bebidas], pero fuera de temporada cierra pronto.",
                    "Lleva más agua de la que creas necesaria, porque en la cresta no hay ninguna fuente.",
                    "Por la tarde el tiempo cambió de repente y nos alegramos de llevar [chubasquero|un forro polar].",
                    "Con niños pequeños es mejor elegir la vuelta corta alrededor del lago.",
                    "Pasamos la noche en un pequeño camping que lleva una pareja muy amable de {city}.",
                    "Las reservas se hacen por correo electrónico a {email} o llamando al {phone}.",
                    "La ruta completa nos llevó unas {num2} horas, con una larga parada para [comer|bañarnos].",
                    "En {month} los prados están llenos de flores y todavía no han llegado las multitudes.",
                    "A la vuelta paramos en {city} a tomar algo en una pastelería abierta desde {year}.",
                    "Las señales son claras, pero conviene llevar un mapa en papel porque la cobertura falla.",
                    "{name}, que venía con nosotros, ya conocía la ruta [de otros años|del verano pasado] y sabía dónde girar en cada cruce.",
                    "El aparcamiento cuesta {num2} euros al día y se paga [en el parquímetro|con tarjeta].",
                    "Justo debajo de la cima vimos [dos rebecos|un zorro|un águila real], y eso ya compensó la subida.",
                ],
            },
        },
        "ui": {
            "nav": ["Inicio", "Local", "Deportes", "Cultura", "Opinión", "Contacto", "Aviso legal", "Suscríbete"],
            "cookie": "Utilizamos cookies propias y de terceros para mejorar nuestros servicios.",
            "accept": "Aceptar todas",
            "related": "Te puede interesar",
            "share": "Compartir este artículo",
            "by": "Por {name}",
            "updated": "Actualizado el {date}",
            "rights": "Todos los derechos reservados.",
            "footer_links": ["Política de privacidad", "Aviso legal", "Publicidad", "Contacto"],
            "newsletter": "Suscríbete a nuestro boletín y no te pierdas nada.",
            "comments": "Los comentarios están cerrados.",
            "syndication": "Este artículo se publicó originalmente en {site}.",
            "not_found": ["Página no encontrada", "La página que buscas no existe o ha sido trasladada."],
            "spam": ["vuelos baratos", "mejor precio", "ofertas de última hora", "reserva ya", "hoteles baratos"],
        },
        "sites": [
            ("Diario del Sur", "diariodelsur.es", "news"),
            ("Recetas de casa", "recetasdecasa.es", "recipe"),
            ("Caminos y cumbres", "caminosycumbres.com", "travel"),
        ],
    },
}

# Languages the pipeline does not keep: a site or two each, news only.
OTHER = {
    "it": ("Il Corriere di Valle", "corrieredivalle.it", [
        "Il consiglio comunale ha approvato il progetto martedì sera con {num} voti favorevoli.",
        "La sindaca ha parlato di una decisione attesa da molto tempo.",
        "I lavori dovrebbero iniziare a maggio e durare circa {num} settimane.",
        "Durante il cantiere il traffico sarà deviato attraverso la zona industriale.",
        "Secondo il Comune, circa il {pct} per cento delle famiglie usa l'autobus ogni settimana.",
        "I commercianti del centro chiedono che almeno una corsia resti aperta.",
        "Gli organizzatori si aspettano più di {num} espositori e migliaia di visitatori.",
        "Una nuova assemblea pubblica sul progetto si terrà il mese prossimo.",
        "I vigili del fuoco sono rimasti al lavoro fino a tarda notte.",
        "Molti genitori hanno accolto con favore la decisione della giunta.",
    ]),
    "pt": ("Jornal da Serra", "jornaldaserra.pt", [
        "A câmara municipal aprovou o projeto na terça-feira à noite com {num} votos a favor.",
        "A presidente da câmara falou de uma decisão há muito esperada.",
        "As obras devem começar em maio e durar cerca de {num} semanas.",
        "Durante as obras, o trânsito será desviado pela zona industrial.",
        "Segundo o município, cerca de {pct} por cento das famílias usa o autocarro todas as semanas.",
        "Os comerciantes do centro pedem que pelo menos uma faixa continue aberta.",
        "Os organizadores esperam mais de {num} expositores e milhares de visitantes.",
        "Uma nova reunião pública sobre o projeto realiza-se no próximo mês.",
        "Os bombeiros trabalharam até altas horas da noite.",
        "Muitos pais receberam a decisão com satisfação.",
    ]),
    "nl": ("Dagblad van het Noorden", "dagbladnoorden.nl", [
        "De gemeenteraad heeft dinsdagavond met {num} stemmen voor het plan gestemd.",
        "De burgemeester sprak van een besluit waar lang op is gewacht.",
        "De werkzaamheden beginnen in mei en duren ongeveer {num} weken.",
        "Tijdens de werkzaamheden wordt het verkeer via het industrieterrein omgeleid.",
        "Volgens de gemeente neemt ongeveer {pct} procent van de huishoudens elke week de bus.",
        "Winkeliers in het centrum vragen om ten minste één rijstrook open te houden.",
        "De organisatie verwacht meer dan {num} kramen en duizenden bezoekers.",
        "Volgende maand volgt een nieuwe openbare bijeenkomst over het project.",
        "De brandweer was tot laat in de nacht bezig met het leegpompen van kelders.",
        "Veel ouders zijn blij met het besluit van het college.",
    ]),
}

# Sites that republish other sites' articles with a credit line (near duplicates).
AGGREGATORS = {
    "en": ("Daily Digest", "dailydigest-news.com"),
    "de": ("Nachrichten kompakt", "nachrichten-kompakt.de"),
    "fr": ("Actu Express", "actu-express.fr"),
    "es": ("Noticias al Día", "noticiasaldia.es"),
}

PHONES = {
    "en": lambda r: f"({r.randint(201, 989)}) {r.randint(200, 999)}-{r.randint(1000, 9999)}",
    "de": lambda r: f"+49 {r.choice(['761', '551', '951', '7531', '4131'])} {r.randint(100, 999)} {r.randint(1000, 9999)}",
    "fr": lambda r: f"0{r.choice('12345')} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}",
    "es": lambda r: f"+34 {r.choice(['958', '957', '923', '963', '947'])} {r.randint(10, 99)} {r.randint(10, 99)} {r.randint(10, 99)}",
}

ALTERNATION = re.compile(r"\[([^\[\]]*)\]")

ASCII = str.maketrans("äöüßéèêëàâçîïôûùñíóúáÉÖÄÜ", "aousee" "eeaacii" "ouunioua" "EOAU")


def slug(s):
    s = s.lower().translate(ASCII)
    return "-".join("".join(c if c.isalnum() else " " for c in s).split())[:60]


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Page:
    """A page as the crawler fetched it, before it is turned into a record."""

    def __init__(self, kind, lang, site, url, html, title=None, body=None, topic=None):
        self.kind, self.lang, self.site, self.url, self.html = kind, lang, site, url, html
        self.title, self.body, self.topic = title, body, topic  # an article's own part, for copies


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.city = None  # the town an article is about, once chosen

    # -- slot filling -------------------------------------------------------------------

    def person(self, L):
        return f"{self.r.choice(L['first'])} {self.r.choice(L['last'])}"

    def email(self, L, name=None, domain=None):
        name = name or self.person(L)
        first, last = name.split(" ", 1)
        user = self.r.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}{self.r.randint(70, 99)}"])
        domain = domain or self.r.choice(["gmail.com", "outlook.com", "posteo.de", "orange.fr", "yahoo.es", "gmx.net"])
        return slug(user).replace("-", ".") + "@" + domain

    def fill(self, template, L, lang, domain=None):
        """`template` with each `[a|b|c]` replaced by one of its choices and each `{slot}`
        by a value of the language."""
        r = self.r
        template = ALTERNATION.sub(lambda m: r.choice(m.group(1).split("|")), template)
        values = {
            "city": self.city or r.choice(L["city"]),
            "name": self.person(L),
            "num": r.randint(3, 40),
            "num2": r.randint(2, 15),
            "money": f"{r.randint(2, 48)}{',' if lang != 'en' else '.'}{r.randint(1, 9)}",
            "pct": r.randint(18, 64),
            "weekday": r.choice(L["weekday"]),
            "month": r.choice(L["month"]),
            "year": r.randint(1952, 1998),
            "year2": r.randint(2015, 2023),
            "day": r.randint(1, 28),
            "small": r.randint(1, 4),
            "yes": r.randint(7, 14),
            "no": r.randint(1, 6),
            "place": r.choice(L["place"]),
            "dish": r.choice(L["dish"]),
            "temp": r.choice([180, 190, 200] if lang != "en" else [350, 375, 400]),
            "email": self.email(L, domain=domain) if domain is None else f"{r.choice(['info', 'contact', 'service', 'buero', 'redaccion'])}@{domain}",
            "phone": PHONES.get(lang, PHONES["en"])(r),
        }
        if "{name}" in template and "{email}" in template and domain is None:
            values["email"] = self.email(L, values["name"])
        out = template.format(**values)
        return out[0].upper() + out[1:]

    def date(self):
        return f"2024-{self.r.randint(3, 10):02d}-{self.r.randint(1, 28):02d}"

    # -- page furniture -----------------------------------------------------------------

    def chrome(self, lang, site_name, domain, title, body, related_titles):
        """A full page: head, cookie banner, header and navigation, the body, a sidebar,
        a footer with the site's own address, e-mail and phone, and scripts. Three layouts."""
        L = LANGS.get(lang)
        ui = L["ui"] if L else LANGS["en"]["ui"]
        r = self.r
        layout = sum(map(ord, domain)) % 3
        nav = "".join(f'<li><a href="/{slug(x)}/">{esc(x)}</a></li>' for x in ui["nav"])
        related = "".join(f'<li><a href="/{slug(t)}.html">{esc(t)}</a></li>' for t in related_titles)
        contact = f"info@{domain}"
        phone = PHONES.get(lang, PHONES["en"])(random.Random(domain))
        footer_links = " | ".join(f'<a href="/{slug(x)}">{esc(x)}</a>' for x in ui["footer_links"])
        head = (
            f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)} | {esc(site_name)}</title>\n"
            f'<link rel="stylesheet" href="/assets/css/main.{r.randint(10**5, 10**6 - 1):x}.css">\n'
            "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments);}"
            "gtag('js',new Date());gtag('config','G-" + f"{zlib.crc32(domain.encode()) % 10**8:08d}" + "');</script>\n"
            "</head>\n"
        )
        cookie = (
            f'<div id="cookie-consent" class="cookie-banner"><p>{esc(ui["cookie"])}</p>'
            f'<button class="btn accept">{esc(ui["accept"])}</button></div>\n'
        )
        share = (
            f'<div class="share-buttons"><span>{esc(ui["share"])}</span> <a href="#">Facebook</a> '
            '<a href="#">X</a> <a href="#">WhatsApp</a> <a href="#">E-Mail</a></div>\n'
        )
        newsletter = (
            f'<form class="newsletter" action="/subscribe"><label>{esc(ui["newsletter"])}</label>'
            '<input type="email" name="email"><button>OK</button></form>\n'
        )
        footer = (
            f'<footer class="site-footer"><p>{esc(site_name)} · {esc(r.choice(L["city"]) if L else "")} · '
            f'<a href="mailto:{contact}">{contact}</a> · {phone}</p>\n<p>{footer_links}</p>\n'
            f"<p>© 2024 {esc(site_name)}. {esc(ui['rights'])}</p></footer>\n"
        )
        scripts = '<script src="/assets/js/vendor.min.js"></script>\n<script src="/assets/js/app.js" defer></script>\n'
        if layout == 0:
            page = (
                f"<body>\n{cookie}<header class=\"site-header\"><a class=\"logo\" href=\"/\">{esc(site_name)}</a>\n"
                f'<nav class="main-nav"><ul>{nav}</ul></nav></header>\n'
                f"<main>\n<article>\n{body}{share}</article>\n"
                f'<aside class="sidebar"><h3>{esc(ui["related"])}</h3><ul>{related}</ul>{newsletter}</aside>\n'
                f"</main>\n{footer}{scripts}</body>\n</html>\n"
            )
        elif layout == 1:
            page = (
                f'<body class="post-template">\n<div id="page">\n<div id="top-bar" class="topbar"><ul class="menu">{nav}</ul></div>\n'
                f'<div id="masthead"><span class="site-title">{esc(site_name)}</span></div>\n'
                f'<div id="content" class="container"><div class="row"><div class="col-md-8 entry-content">\n{body}'
                f'<p class="comments-closed">{esc(ui["comments"])}</p></div>\n'
                f'<div class="col-md-4 widget-area"><div class="widget related-posts"><h4>{esc(ui["related"])}</h4><ul>{related}</ul></div></div>\n'
                f"</div></div>\n{cookie}{footer}</div>\n{scripts}</body>\n</html>\n"
            )
        else:
            page = (
                f'<body>\n<div class="navbar"><a href="/">{esc(site_name)}</a><ul>{nav}</ul></div>\n'
                f'<div class="breadcrumb"><a href="/">{esc(ui["nav"][0])}</a> › <a href="/{slug(ui["nav"][1])}/">{esc(ui["nav"][1])}</a></div>\n'
                f'<div class="main-content">\n{body}{share}</div>\n'
                f'<div class="related"><h3>{esc(ui["related"])}</h3><ul>{related}</ul></div>\n'
                f"{newsletter}{footer}{cookie}{scripts}</body>\n</html>\n"
            )
        return head + page

    # -- page bodies ----------------------------------------------------------------------

    def paragraphs(self, pool, L, lang, n_sentences, per_par=(2, 4)):
        """`n_sentences` distinct sentences of `pool` in paragraphs of `per_par` sentences."""
        # A subset in the pool's order, which is the order a story is told in.
        chosen = [pool[i] for i in sorted(self.r.sample(range(len(pool)), min(n_sentences, len(pool))))]
        pars, i = [], 0
        while i < len(chosen):
            k = self.r.randint(*per_par)
            pars.append(" ".join(self.fill(s, L, lang) for s in chosen[i:i + k]))
            i += k
        return pars

    def article(self, lang, topic):
        L = LANGS[lang]
        T = L["topics"][topic]
        r = self.r
        self.city = r.choice(L["city"])
        title = self.fill(r.choice(T["titles"]), L, lang)
        ui = L["ui"]
        parts = [f"<h1>{esc(title)}</h1>\n"]
        if topic in ("news", "tech"):
            parts.append(f'<p class="byline">{esc(ui["by"].format(name=self.person(L)))} · '
                         f'<time>{esc(ui["updated"].format(date=self.date()))}</time></p>\n')
        pars = self.paragraphs(T["sentences"], L, lang, r.randint(5, 8) if topic == "recipe" else r.randint(7, 12))
        if topic == "recipe":
            ingredients = r.sample(T["ingredients"], r.randint(4, 7))
            steps = [T["steps"][i] for i in sorted(r.sample(range(len(T["steps"])), r.randint(3, 5)))]
            parts += [f"<p>{esc(p)}</p>\n" for p in pars[:2]]
            parts.append(f"<h2>{esc(T['ingredients_heading'])}</h2>\n<ul>"
                         + "".join(f"<li>{esc(self.fill(i, L, lang))}</li>" for i in ingredients) + "</ul>\n")
            parts.append(f"<h2>{esc(T['steps_heading'])}</h2>\n<ol>"
                         + "".join(f"<li>{esc(self.fill(s, L, lang))}</li>" for s in steps) + "</ol>\n")
            parts += [f"<p>{esc(p)}</p>\n" for p in pars[2:]]
        elif topic == "tech" and r.random() < 0.6:
            # A code listing: C-like code has braces, which C4's rules treat as a sign of code.
            parts += [f"<p>{esc(p)}</p>\n" for p in pars[:2]]
            code = r.choice([
                "cache:\n  key: deps-${{ hashFiles('Cargo.lock') }}\n  paths:\n    - ~/.cargo/registry",
                "fn handle(req: Request) -> Response {\n    let cached = CACHE.get(&req.key);\n    respond(cached)\n}",
                "location /api/ {\n    proxy_pass http://127.0.0.1:8080;\n    proxy_set_header Host $host;\n}",
                "$ du -sh ~/.cargo/registry\n1.9G    /home/ci/.cargo/registry\n$ time cargo build --release",
                "$ journalctl -u worker --since today | grep -c restart\n14",
            ])
            parts.append(f"<pre><code>{esc(code)}</code></pre>\n")
            parts += [f"<p>{esc(p)}</p>\n" for p in pars[2:]]
        else:
            parts += [f"<p>{esc(p)}</p>\n" for p in pars]
        self.city = None
        return title, "".join(parts)

    def related(self, lang, topic):
        L = LANGS[lang]
        return [self.fill(t, L, lang) for t in self.r.sample(L["topics"][topic]["titles"], 3)]

    def url(self, domain, title, section=""):
        return f"https://www.{domain}/{section}{self.date()[:7].replace('-', '/')}/{slug(title)}"

    # -- page kinds -----------------------------------------------------------------------

    def good(self, lang):
        L = LANGS[lang]
        site_name, domain, topic = self.r.choice(L["sites"])
        title, body = self.article(lang, topic)
        html = self.chrome(lang, site_name, domain, title, body, self.related(lang, topic))
        return Page("article", lang, domain, self.url(domain, title), html, title, body, topic)

    def other_language(self):
        lang = self.r.choice(sorted(OTHER))
        site_name, domain, pool = OTHER[lang]
        sentences = [s.format(num=self.r.randint(3, 40), pct=self.r.randint(18, 64)) for s in self.r.sample(pool, 7)]
        title = " ".join(sentences[0].split()[:6]).rstrip(" ,.")
        body = f"<h1>{esc(title)}</h1>\n" + "".join(
            f"<p>{esc(' '.join(sentences[i:i + 2]))}</p>\n" for i in range(0, 7, 2))
        html = self.chrome(lang, site_name, domain, title, body, [])
        section = {"it": "notizie", "pt": "noticias", "nl": "nieuws"}[lang]
        return Page("other_language", lang, domain, f"https://www.{domain}/{section}/{self.r.randint(10**4, 10**5)}", html)

    def js_shell(self, lang):
        """A single-page app: nothing but a mount point and scripts."""
        L = LANGS[lang]
        site_name, domain, _ = self.r.choice(L["sites"])
        html = (
            f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{esc(site_name)}</title>'
            '<script src="/static/js/runtime.js"></script></head><body>'
            '<noscript>You need to enable JavaScript to run this app.</noscript><div id="root"></div>'
            '<script src="/static/js/main.chunk.js"></script></body></html>'
        )
        return Page("js_shell", lang, domain, f"https://app.{domain}/#/{self.r.choice(['login', 'account', 'search'])}", html)

    def not_found(self, lang):
        L = LANGS[lang]
        site_name, domain, topic = self.r.choice(L["sites"])
        heading, text = L["ui"]["not_found"]
        body = f"<h1>{esc(heading)}</h1>\n<p>{esc(text)}</p>\n"
        html = self.chrome(lang, site_name, domain, heading, body, self.related(lang, topic))
        return Page("not_found", lang, domain, f"https://www.{domain}/{self.r.randint(1000, 9999)}.html", html)

    def seo_spam(self, lang):
        """Keyword stuffing: the same few phrases over and over, with city names swapped in."""
        L = LANGS[lang]
        r = self.r
        words = L["ui"]["spam"]
        domain = r.choice(["cheap-deals-24.biz", "top-angebote-online.info", "meilleurs-prix.top", "ofertas-top.xyz"])
        lines = []
        for _ in range(r.randint(14, 24)):
            a, b = r.sample(words, 2)
            lines.append(f"{a} {r.choice(L['city'])} {b} {a} {r.choice(L['city'])}")
        title = f"{words[0]} {words[1]} {words[2]}"
        body = f"<h1>{esc(title)}</h1>\n" + "".join(f"<p>{esc(l)} - {esc(words[0])} {esc(words[1])}</p>\n" for l in lines)
        html = self.chrome(lang, domain, domain, title, body, [])
        return Page("seo_spam", lang, domain, f"http://{domain}/{slug(title)}-{r.randint(100, 999)}", html)

    def lorem(self, lang):
        """A theme demo page left online: placeholder text under real navigation."""
        L = LANGS[lang]
        r = self.r
        site_name, domain, topic = r.choice(L["sites"])
        lorem = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore "
                 "et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut "
                 "aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse "
                 "cillum dolore eu fugiat nulla pariatur.")
        title, body = self.article(lang, topic)
        body = body.replace("</h1>\n", "</h1>\n" + f"<p>{lorem}</p>\n", 1)
        html = self.chrome(lang, site_name, domain, "Sample page", body, self.related(lang, topic))
        return Page("lorem_ipsum", lang, domain, f"https://www.{domain}/sample-page-{r.randint(2, 9)}/", html)

    def hashtags(self, lang):
        """A photo post whose text is a caption and a wall of hashtags."""
        L = LANGS[lang]
        r = self.r
        site_name, domain, _ = r.choice([s for s in L["sites"] if s[2] == "travel"])
        place = r.choice(L["place"])
        tags = ["travel", "wanderlust", "hiking", "nature", "mountains", "instagood", "photooftheday", "adventure",
                "explore", "outdoors", "naturelovers", "weekend", "sunset", "view", slug(place).replace("-", "")]
        body = f"<h1>{esc(place)}</h1>\n<p>{esc(place)} {r.randint(2018, 2024)}.</p>\n<p>" + " ".join(
            "#" + t for t in r.sample(tags, len(tags))) + "</p>\n"
        html = self.chrome(lang, site_name, domain, place, body, self.related(lang, "travel"))
        return Page("hashtags", lang, domain, f"https://www.{domain}/foto/{slug(place)}-{r.randint(10, 99)}", html)

    def price_list(self, lang):
        """A shop category page: product names and prices, one per line."""
        L = LANGS[lang]
        r = self.r
        shop = r.choice(["outdoor-shop24.com", "bergsport-direkt.de", "rando-equipement.fr", "tienda-montana.es"])
        items = ["Rain jacket", "Trekking poles", "Headlamp", "Water bottle", "Sleeping bag", "Tent 2P",
                 "Hiking boots", "Backpack 30L", "Gaiters", "First aid kit", "Camping stove", "Map case"]
        rows = "".join(f"<li>{esc(i)} {r.choice(['S', 'M', 'L', 'XL'])}<br>{r.randint(9, 249)},{r.randint(0, 99):02d} EUR</li>"
                       for i in r.sample(items, r.randint(8, 12)))
        body = f"<h1>Outdoor</h1>\n<ul class=\"products\">{rows}</ul>\n"
        html = self.chrome(lang, shop, shop, "Outdoor", body, [])
        return Page("price_list", lang, shop, f"https://{shop}/c/outdoor?page={r.randint(1, 9)}", html)

    def exact_copy(self, page):
        """The same page under another URL: tracking parameters, AMP or print view."""
        r = self.r
        suffix = r.choice(["?utm_source=newsletter&utm_medium=email", "?ref=rss", "/amp", "?print=1", "#comments"])
        return Page("exact_copy", page.lang, page.site, page.url + suffix, page.html)

    def near_copy(self, page):
        """A copy on an aggregator site that republishes articles: another frame around the
        article, one figure changed and a credit line added."""
        r = self.r
        L = LANGS[page.lang]
        site_name, domain = AGGREGATORS[page.lang]
        body = page.body
        head = body.index("</h1>")
        digits = [i for i, c in enumerate(body) if c.isdigit() and i > head]
        if digits:
            i = r.choice(digits)
            body = body[:i] + str((int(body[i]) + 1) % 10) + body[i + 1:]
        original = next(s[0] for s in L["sites"] if s[1] == page.site)
        body += f"<p><em>{esc(L['ui']['syndication'].format(site=original))}</em></p>\n"
        html = self.chrome(page.lang, site_name, domain, page.title, body, self.related(page.lang, page.topic))
        url = self.url(domain, page.title, r.choice(["partner/", "feed/", "", "story/"]))
        return Page("near_copy", page.lang, domain, url, html, page.title, body, page.topic)


def crawl(seed=SEED, pages=PAGES):
    g = Gen(seed)
    r = g.r
    langs = ["en"] * 40 + ["de"] * 22 + ["fr"] * 20 + ["es"] * 18
    kinds = [("good", 78), ("other_language", 5), ("js_shell", 3), ("not_found", 3), ("seo_spam", 4),
             ("lorem", 2), ("hashtags", 2), ("price_list", 3)]
    population = [k for k, w in kinds for _ in range(w)]
    out = []
    for _ in range(pages):
        kind = r.choice(population)
        lang = r.choice(langs)
        page = g.other_language() if kind == "other_language" else getattr(g, kind)(lang)
        out.append(page)
        # Copies of articles turn up later in the crawl.
        if page.kind == "article":
            x = r.random()
            if x < 0.07:
                out.append(g.exact_copy(page))
            elif x < 0.13:
                out.append(g.near_copy(page))
    # Crawl order is not publication order: copies land anywhere after a short delay.
    order = sorted(range(len(out)), key=lambda i: i + r.randint(0, 60))
    return [out[i] for i in order]


def records(pages):
    for n, p in enumerate(pages):
        yield {
            "id": f"doc-{n:05d}",
            "url": p.url,
            "fetched_at": f"2024-06-{1 + n * 28 // len(pages):02d}T{(n * 7919) % 24:02d}:{(n * 31) % 60:02d}:{(n * 17) % 60:02d}Z",
            "content_type": "text/html; charset=utf-8",
            "html": p.html,
        }


def encode(recs):
    """The segment files as bytes: JSON lines, gzip without a timestamp."""
    recs = list(recs)
    per = -(-len(recs) // SEGMENTS)
    files = {}
    for s in range(SEGMENTS):
        lines = "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in recs[s * per:(s + 1) * per])
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as z:
            z.write(lines.encode())
        files[f"crawl-{s:02d}.jsonl.gz"] = (lines, buf.getvalue())
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare the decoded files under data/ with a fresh generation; exit 1 on a difference")
    ap.add_argument("--stats", action="store_true", help="print how many pages of each kind and language were generated")
    args = ap.parse_args()
    pages = crawl()
    files = encode(records(pages))
    if args.stats:
        from collections import Counter
        print(Counter(p.kind for p in pages).most_common())
        print(Counter(p.lang for p in pages).most_common())
    if args.check:
        bad = [f for f, (text, _) in files.items()
               if not (OUT / f).exists() or gzip.decompress((OUT / f).read_bytes()).decode() != text]
        extra = sorted(p.name for p in OUT.glob("*.jsonl*") if p.name not in files)
        if bad or extra:
            print(f"examples/web/data differs from the generator: {bad + extra}", file=sys.stderr)
            sys.exit(1)
        print(f"examples/web/data matches the generator ({len(pages)} pages)")
        return
    OUT.mkdir(exist_ok=True)
    for f, (_, data) in files.items():
        (OUT / f).write_bytes(data)
    print(f"wrote {len(pages)} pages to {OUT} ({sum(len(d) for _, d in files.values())} bytes)")


if __name__ == "__main__":
    main()
